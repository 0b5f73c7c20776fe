import { DeviceTransport } from './device-transport.js';
import { MssimTransport } from './mssim-transport.js';
import { SwtpmTransport } from './swtpm-transport.js';
import type { TpmTransport, TransportOptions } from './transport.js';
import type { TransportSpec } from '../config/transport-spec.js';

export function openTransport(spec: TransportSpec, options: TransportOptions = {}): TpmTransport {
  switch (spec.kind) {
    case 'device':
      return new DeviceTransport(spec.path, options);
    case 'swtpm':
      return new SwtpmTransport(spec.host, spec.port, options);
    case 'mssim':
      return new MssimTransport(spec.host, spec.port, options);
  }
}
