import { TpmCommandError } from '../tpm-client.js';
import type { TpmTransport } from '../transport.js';
import { TpmReader, tpm2b, u16, u32 } from './tpm-bytes.js';

/**
 * TPM 2.0 commands marshalled by hand (Part 1 §18, Part 3 §5): for the commands whose
 * exact bytes matter (a quote is signed over the TPMS_ATTEST the TPM returns, and
 * tss.js reads 64-bit fields such as its clock and firmware version through 32-bit
 * shifts, so its re-marshalled copy does not verify). Sent on the agent's transport,
 * which runs one command at a time.
 */

const TPM_ST_NO_SESSIONS = 0x8001;
const TPM_ST_SESSIONS = 0x8002;
/** The password authorisation "session" (Part 1 §19.8.4). */
export const TPM_RS_PW = 0x40000009;
const CONTINUE_SESSION = 0x01;

/** One entry of a command's authorisation area: the password session, or a policy session by handle. */
export interface AuthSession {
  handle: number;
  /** The password for TPM_RS_PW (empty: the well-known empty authValue); empty for a policy session. */
  hmac?: Buffer;
  /** false: the TPM ends the session after this command (a one-use policy session). */
  continueSession?: boolean;
}

export const PASSWORD: AuthSession = { handle: TPM_RS_PW };

export interface Command {
  /** Named in errors: "PCR_Event" becomes "TPM2_PCR_Event failed on …". */
  name: string;
  code: number;
  handles?: readonly number[];
  /** One session per handle that needs authorisation, in handle order. */
  sessions?: readonly AuthSession[];
  parameters?: readonly Buffer[];
  /** How many handles the response carries before its parameters (CreatePrimary, StartAuthSession: 1). */
  responseHandles?: number;
}

export interface Response {
  handles: number[];
  /** The response parameters only (the authorisation area is cut off). */
  parameters: TpmReader;
}

export function marshalCommand(command: Command): Buffer {
  const sessions = command.sessions ?? [];
  const handles = Buffer.concat((command.handles ?? []).map(u32));
  const auth = sessions.length
    ? Buffer.concat(sessions.map((s) => Buffer.concat([u32(s.handle), tpm2b(), Buffer.from([s.continueSession === false ? 0 : CONTINUE_SESSION]), tpm2b(s.hmac ?? Buffer.alloc(0))])))
    : undefined;
  const body = Buffer.concat([handles, ...(auth ? [u32(auth.length), auth] : []), ...(command.parameters ?? [])]);
  return Buffer.concat([u16(sessions.length ? TPM_ST_SESSIONS : TPM_ST_NO_SESSIONS), u32(10 + body.length), u32(command.code), body]);
}

/** The response's handles and parameters; a response code other than success is a TpmCommandError. */
export function unmarshalResponse(command: Command, response: Buffer, transportName: string): Response {
  const r = new TpmReader(response, `TPM2_${command.name} response`);
  const tag = r.u16('tag');
  r.u32('responseSize');
  const code = r.u32('responseCode');
  if (code !== 0) throw new TpmCommandError(command.name, code, transportName);
  const handles = Array.from({ length: command.responseHandles ?? 0 }, (_, i) => r.u32(`handle ${i}`));
  if (tag !== TPM_ST_SESSIONS) return { handles, parameters: new TpmReader(r.take(r.remaining, 'parameters'), `TPM2_${command.name} parameters`) };
  const size = r.u32('parameterSize');
  return { handles, parameters: new TpmReader(r.take(size, 'parameters'), `TPM2_${command.name} parameters`) };
}

export async function runCommand(transport: TpmTransport, command: Command): Promise<Response> {
  return unmarshalResponse(command, await transport.transmit(marshalCommand(command)), transport.name);
}
