import { TPM_HANDLE, TPM_RH, TPM_ST, TpmBuffer, type ReqStructure, type RespStructure } from './tss-lib.js';
import { HEADER_SIZE } from './transport.js';

/**
 * TPM command and response framing (TPM 2.0 Part 1, §18: header, handles, authorization
 * area, parameters) done by the agent, with tss.js's structures marshalling only the
 * parameters. tss.js's own path zero-fills a fresh 4 KiB buffer for every command, copies
 * every response, and hands results over through two setImmediate hops; on a fast TPM
 * (swtpm, a resource manager's cache) that is a fifth of the time a command takes.
 */

/** TPM_BUFSIZE of the kernel drivers, and the largest command any TPM here takes. */
const MAX_COMMAND_SIZE = 4096;
/** Commands are marshalled here, then copied out at their own size. */
const scratch = Buffer.allocUnsafe(MAX_COMMAND_SIZE);

/**
 * A password session with an empty password (TPMS_AUTH_COMMAND, Part 2 §10.13.2): handle
 * TPM_RS_PW, no nonce, continueSession, no HMAC. What the agent authorizes its hierarchy
 * and key commands with, as the Azure SDK does.
 */
const EMPTY_PASSWORD_SESSION = Buffer.from([0x40, 0x00, 0x00, 0x09, 0x00, 0x00, 0x01, 0x00, 0x00]);

/** A TpmBuffer over bytes the agent already has, so that tss.js allocates none. */
class BytesBuffer extends TpmBuffer {
  constructor(bytes: Buffer) {
    super(0);
    this.buf = bytes;
  }

  /** Reads or writes `bytes` from the start. */
  over(bytes: Buffer, position = 0): this {
    this.buf = bytes;
    this.curPos = position;
    return this;
  }
}

// One of each, reused: commands are framed and responses parsed synchronously, one at a
// time, and a fresh TpmBuffer costs more than the framing itself. One that a failure may
// have left half-way (tss.js keeps a stack of sized structures in it) is replaced.
const EMPTY = Buffer.alloc(0);
let writer = new BytesBuffer(scratch);
let reader = new BytesBuffer(EMPTY);

export class FrameError extends Error {}

/** The whole command: header, handles, an empty-password session per authorized handle, parameters. */
export function frameCommand(commandCode: number, request: ReqStructure): Buffer {
  try {
    return frame(writer.over(scratch), commandCode, request);
  } catch (err) {
    writer = new BytesBuffer(scratch);
    throw err;
  }
}

function frame(out: BytesBuffer, commandCode: number, request: ReqStructure): Buffer {
  const sessions = request.numAuthHandles();
  out.writeShort(sessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
  out.writeInt(0); // commandSize, known at the end
  out.writeInt(commandCode);
  for (const handle of request.getHandles() ?? []) {
    if (handle) handle.toTpm(out);
    else out.writeInt(TPM_RH.NULL);
  }
  if (sessions > 0) {
    out.writeInt(sessions * EMPTY_PASSWORD_SESSION.length);
    for (let i = 0; i < sessions; i++) out.writeByteBuf(EMPTY_PASSWORD_SESSION);
  }
  request.toTpm(out);
  if (!out.isOk()) throw new FrameError(`command 0x${commandCode.toString(16)} does not fit in ${MAX_COMMAND_SIZE} bytes`);
  const size = out.curPos;
  out.writeNumAtPos(size, 2);
  return Buffer.from(scratch.subarray(0, size));
}

/** The response code, and the response's handle and parameters when it succeeded and `type` names them. */
export function parseResponse<R extends RespStructure>(response: Buffer, type?: new () => R): { responseCode: number; result?: R } {
  if (response.length < HEADER_SIZE) throw new FrameError(`response of ${response.length} bytes is shorter than its header`);
  const tag = response.readUInt16BE(0);
  const responseCode = response.readUInt32BE(6);
  if (responseCode !== 0 || !type) return { responseCode };
  try {
    return { responseCode, result: parse(reader.over(response, HEADER_SIZE), tag, type) };
  } catch (err) {
    reader = new BytesBuffer(EMPTY);
    throw err;
  } finally {
    reader.over(EMPTY); // hold on to no response
  }
}

function parse<R extends RespStructure>(input: BytesBuffer, tag: number, type: new () => R): R {
  const response = input.buffer;
  const result = new type();
  if (result.numHandles() > 0) result.setHandle(TPM_HANDLE.fromTpm(input));
  // With sessions, parameterSize comes first and the sessions' area follows the parameters.
  const parameterSize = tag === Number(TPM_ST.SESSIONS) ? input.readInt() : response.length - input.curPos;
  const start = input.curPos;
  result.initFromTpm(input);
  if (!input.isOk() || input.curPos - start !== parameterSize) {
    throw new FrameError(`response parameters of ${input.curPos - start} bytes where the TPM announced ${parameterSize}`);
  }
  return result;
}
