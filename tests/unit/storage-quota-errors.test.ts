import { describe, expect, it } from 'vitest';
import { isQuotaExceeded } from '../../src/storage/errors.ts';

/** Which IndexedDB failures mean "no room": the errors Chromium gives (seen on a profile on a small tmpfs). */
const domError = (name: string, message: string) => Object.assign(new Error(message), { name });

describe('isQuotaExceeded', () => {
  it('counts the quota check and a disk too full for the blob file as no room', () => {
    expect(isQuotaExceeded(domError('QuotaExceededError', ''))).toBe(true);
    expect(isQuotaExceeded(domError('DataError', 'Failed to write blobs (IOError)'))).toBe(true);
    expect(isQuotaExceeded(domError('UnknownError', 'Not enough disk space'))).toBe(true);
  });
  it('leaves other failures alone', () => {
    expect(isQuotaExceeded(domError('DataError', 'Evaluating the object store key path did not yield a value.'))).toBe(false);
    expect(isQuotaExceeded(domError('UnknownError', 'Internal error.'))).toBe(false);
    expect(isQuotaExceeded(null)).toBe(false);
    expect(isQuotaExceeded('QuotaExceededError')).toBe(false);
  });
});
