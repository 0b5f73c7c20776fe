import { GetCapabilityResponse, TPM_CAP, TPM_CC, TPM2_GetCapability_REQUEST, type TPML_TAGGED_TPM_PROPERTY } from './tss-lib.js';
import type { TpmClient } from './tpm-client.js';

/** TPM_PT values of the fixed property group (TPM 2.0 Part 2, §6.13). */
const PT = {
  familyIndicator: 0x100,
  level: 0x101,
  revision: 0x102,
  dayOfYear: 0x103,
  year: 0x104,
  manufacturer: 0x105,
  vendorString1: 0x106,
  vendorString4: 0x109,
  firmwareVersion1: 0x10b,
  firmwareVersion2: 0x10c,
} as const;

/** Vendor ids from the TCG vendor registry, for a readable manufacturer name. */
const VENDORS: Record<string, string> = {
  AMD: 'AMD', ATML: 'Atmel', BRCM: 'Broadcom', CSCO: 'Cisco', FLYS: 'Flyslice', GOOG: 'Google', HPE: 'HPE',
  HISI: 'Huawei', IBM: 'IBM', IFX: 'Infineon', INTC: 'Intel', LEN: 'Lenovo', MSFT: 'Microsoft', NSM: 'National Semiconductor',
  NTZ: 'Nationz', NTC: 'Nuvoton', QCOM: 'Qualcomm', ROCC: 'Fuzhou Rockchip', SMSC: 'SMSC', SNS: 'Samsung',
  STM: 'STMicroelectronics', TXN: 'Texas Instruments', WEC: 'Winbond',
};

export interface TpmFacts {
  /** The four-character vendor id, e.g. "IFX" or "IBM". */
  manufacturer: string;
  manufacturerName: string;
  vendorString: string;
  /** major.minor.build.revision from the two firmware words, as tpm2-tools and vendors print it. */
  firmwareVersion: string;
  /** e.g. "2.0, level 0, revision 1.64 (2021)". */
  specLevel: string;
  family: string;
  revision: string;
}

export async function readTpmFacts(client: TpmClient): Promise<TpmFacts> {
  const response = await client.execute(TPM_CC.GetCapability,
    new TPM2_GetCapability_REQUEST(TPM_CAP.TPM_PROPERTIES, PT.familyIndicator, PT.firmwareVersion2 - PT.familyIndicator + 1), GetCapabilityResponse);
  const props = new Map<number, number>();
  for (const p of (response.capabilityData as TPML_TAGGED_TPM_PROPERTY).tpmProperty) props.set(p.property, p.value >>> 0);
  const get = (pt: number) => props.get(pt) ?? 0;

  const manufacturer = text([get(PT.manufacturer)]);
  const vendorWords = [];
  for (let pt = PT.vendorString1; pt <= PT.vendorString4; pt++) vendorWords.push(get(pt));
  const fw1 = get(PT.firmwareVersion1);
  const fw2 = get(PT.firmwareVersion2);
  const family = text([get(PT.familyIndicator)]);
  const revision = (get(PT.revision) / 100).toFixed(2);
  return {
    manufacturer,
    manufacturerName: VENDORS[manufacturer] ?? manufacturer,
    vendorString: text(vendorWords),
    firmwareVersion: `${fw1 >>> 16}.${fw1 & 0xffff}.${fw2 >>> 16}.${fw2 & 0xffff}`,
    specLevel: `${family}, level ${get(PT.level)}, revision ${revision} (${get(PT.year)})`,
    family,
    revision,
  };
}

/**
 * Properties holding four ASCII characters each, read as one string: NUL padding and outer
 * spaces removed. The vendor string's four words are one string; spaces inside it stay.
 */
function text(values: number[]): string {
  const bytes = Buffer.alloc(4 * values.length);
  values.forEach((value, i) => bytes.writeUInt32BE(value >>> 0, 4 * i));
  return bytes.toString('latin1').replace(/\0/g, '').trim();
}
