import {
  TPM_ALG_ID, TPMA_OBJECT, TPMS_NULL_ASYM_SCHEME, TPMS_RSA_PARMS, TPMT_PUBLIC, TPMT_SYM_DEF_OBJECT, TPM2B_PUBLIC_KEY_RSA,
} from './tss-lib.js';

/**
 * The key templates of the Azure IoT SDKs, so that a device provisioned by them (or by
 * us) finds the same EK and SRK. Note the EK template is not the TCG default that
 * tpm2_createek uses: its unique field is empty rather than 256 zero bytes.
 */

/** PolicySecret(TPM_RH_ENDORSEMENT): the standard EK policy (TCG EK Credential Profile, B.3.3). */
const EK_POLICY = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');

function aes128Cfb(): TPMT_SYM_DEF_OBJECT {
  return new TPMT_SYM_DEF_OBJECT(TPM_ALG_ID.AES, 128, TPM_ALG_ID.CFB);
}

function rsa2048StorageKey(attributes: TPMA_OBJECT, policy: Buffer | null): TPMT_PUBLIC {
  const common = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent
    | TPMA_OBJECT.sensitiveDataOrigin;
  return new TPMT_PUBLIC(
    TPM_ALG_ID.SHA256,
    common | attributes,
    policy as Buffer,
    new TPMS_RSA_PARMS(aes128Cfb(), new TPMS_NULL_ASYM_SCHEME(), 2048, 0),
    new TPM2B_PUBLIC_KEY_RSA(),
  );
}

export function endorsementKeyTemplate(): TPMT_PUBLIC {
  return rsa2048StorageKey(TPMA_OBJECT.adminWithPolicy, EK_POLICY);
}

export function storageRootKeyTemplate(): TPMT_PUBLIC {
  return rsa2048StorageKey(TPMA_OBJECT.noDA | TPMA_OBJECT.userWithAuth, null);
}
