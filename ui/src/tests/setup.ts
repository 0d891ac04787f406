import { cleanup } from '@testing-library/svelte';
import { afterEach } from 'vitest';
import { setTransport } from '../lib/api';
import { setLang } from '../lib/i18n.svelte';

afterEach(() => {
  cleanup();
  setTransport(null);
  setLang('zh-CN');
  localStorage.clear();
});
