import { describe, expect, it } from 'vitest';
import { portNumber } from './port.js';

describe('portNumber', () => {
  it('takes integers from 1 to 65535, as numbers or decimal strings', () => {
    expect(portNumber(1)).toBe(1);
    expect(portNumber(65535)).toBe(65535);
    expect(portNumber('15008')).toBe(15008);
  });

  it('refuses everything else', () => {
    for (const v of [0, 65536, -1, 1.5, Number.NaN, '', ' 80', '80 ', '0x50', '1e3', '080000', 'http', null, undefined, {}, [80]]) {
      expect(portNumber(v), JSON.stringify(v)).toBeUndefined();
    }
  });
});
