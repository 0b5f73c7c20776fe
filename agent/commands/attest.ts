import { parseSelection, PcrSelectionError } from '../attestation/pcr-selection.js';
import { CommandFailure, defineCommand } from './command.js';

/**
 * `attest { nonce, pcrs? }`: TPM2_Quote with the attestation key over the PCRs (default: the
 * boot PCRs 0-7 and the hardening PCR), the verifier's nonce as qualifying data, with the
 * PCR values and the hardening event log. The board proves nothing by itself: the verifier
 * checks the quote against the key it bound and replays the log.
 */
export const attest = defineCommand({
  name: 'attest',
  args: {
    // 16 to 66 bytes: TPM2B_DATA holds at most a TPMT_HA (a SHA-512 digest and its algorithm), and less is guessable.
    nonce: { type: 'string', pattern: /^(?=.{24,88}$)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, maxLength: 88, expected: 'base64 of 16 to 66 random bytes' },
    pcrs: { type: 'string', pattern: /^[0-9,-]{1,80}$/, maxLength: 80, expected: 'a PCR list such as 0-7,13', optional: true },
  },
  run: async ({ nonce, pcrs }, context) => {
    let selection: number[] | undefined;
    try {
      selection = pcrs === undefined ? undefined : parseSelection(pcrs);
    } catch (err) {
      if (err instanceof PcrSelectionError) throw new CommandFailure(400, `invalid arguments for attest: pcrs: ${err.message}`);
      throw err;
    }
    return { status: 200, payload: await context.attestation.quote(Buffer.from(nonce, 'base64'), selection) };
  },
});
