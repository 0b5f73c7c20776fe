/**
 * A profile name: a built-in one or a site profile's file name without `.yaml`. The one
 * pattern for every place a name arrives (cloud command, twin, the root apply unit's
 * instance and request, `extends:`): letters, digits, `_` and `-`, starting with a letter
 * or digit, at most 64. It can never be a path, and `systemd-escape` turns it into an
 * instance name the polkit rule admits.
 */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const PROFILE_NAME_EXPECTED = 'a built-in or site profile name (letters, digits, _ and -, at most 64)';
