import { describe, expect, it } from 'vitest';
import { foreignAdapterFolder, foreignOrigin } from '../../src/ui/foreignSources.ts';

/** Which URLs a share link names on another site (they wait for the user's yes). */

const PAGE = 'http://localhost:5173';

describe('foreign sources', () => {
  it('another scheme, host or port is foreign; the page origin and page-relative URLs are not', () => {
    expect(foreignOrigin('http://127.0.0.1:5173/data/', PAGE)).toBe('http://127.0.0.1:5173');
    expect(foreignOrigin('https://localhost:5173/data/', PAGE)).toBe('https://localhost:5173');
    expect(foreignOrigin('http://localhost:8080/', PAGE)).toBe('http://localhost:8080');
    expect(foreignOrigin('//attacker.example/x/', PAGE)).toBe('http://attacker.example');
    expect(foreignOrigin('http://localhost:5173/data/', PAGE)).toBeNull();
    expect(foreignOrigin('data/', PAGE, `${PAGE}/app/`)).toBeNull();
    expect(foreignOrigin('/models/tiny/adapters/q4f32_1-lora/', PAGE)).toBeNull();
  });
  it('adapter ids: only url: folders on another origin', () => {
    expect(foreignAdapterFolder('url:https://huggingface.co/someone/adapter/resolve/main/', PAGE)).toEqual({
      url: 'https://huggingface.co/someone/adapter/resolve/main/',
      origin: 'https://huggingface.co',
    });
    expect(foreignAdapterFolder(`url:${PAGE}/models/tiny/adapters/q4f32_1-lora/`, PAGE)).toBeNull();
    expect(foreignAdapterFolder('tiny-q4f32_1-lora', PAGE)).toBeNull();
    expect(foreignAdapterFolder('none', PAGE)).toBeNull();
  });
});
