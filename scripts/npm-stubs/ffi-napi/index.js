'use strict';
// tss.js requires this module only to reach the Windows TPM Base Services.
// iot-agent runs on Linux and never takes that path; failing loudly keeps it that way.
throw new Error('ffi-napi is not available in iot-agent builds: the Windows TPM (TBS) device is not supported');
