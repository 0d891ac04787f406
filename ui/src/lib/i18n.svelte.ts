// Locale state: Simplified Chinese by default, English as an option, remembered in localStorage.
// Every string the UI shows comes from src/locales/*.json (identical key sets, checked by a test).

import zh from '../locales/zh-CN.json';
import en from '../locales/en.json';

export type Lang = 'zh-CN' | 'en';
export const LANGS: Lang[] = ['zh-CN', 'en'];
const STORAGE_KEY = 'gridwalk.lang';

type Dict = Record<string, string>;
const dicts: Record<Lang, Dict> = { 'zh-CN': zh as Dict, en: en as Dict };

function initialLang(): Lang {
  try {
    const saved = globalThis.localStorage?.getItem(STORAGE_KEY);
    if (saved === 'en' || saved === 'zh-CN') return saved;
  } catch {
    /* storage unavailable */
  }
  return 'zh-CN';
}

export const locale = $state<{ lang: Lang }>({ lang: initialLang() });

function applyDocumentLang(lang: Lang) {
  if (typeof document !== 'undefined') document.documentElement.lang = lang;
}
applyDocumentLang(locale.lang);

export function setLang(lang: Lang): void {
  locale.lang = lang;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, lang);
  } catch {
    /* storage unavailable: the choice lasts this session */
  }
  applyDocumentLang(lang);
}

/** Whether a key exists (in the current language's file; both files have the same keys). */
export function has(key: string): boolean {
  return Object.prototype.hasOwnProperty.call(dicts[locale.lang], key);
}

/** The string for `key` with `{name}` placeholders filled from `params`. */
export function t(key: string, params?: Record<string, string | number>): string {
  const d = dicts[locale.lang];
  let s = Object.prototype.hasOwnProperty.call(d, key) ? d[key] : key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
  }
  return s;
}

/** `t(prefix + value)` when that key exists, else the raw value (a code the UI does not know). */
export function label(prefix: string, value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '';
  const key = prefix + '.' + value;
  return has(key) ? t(key) : value;
}
