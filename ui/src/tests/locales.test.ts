import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import en from '../locales/en.json';
import zh from '../locales/zh-CN.json';

const CJK = /[\u2E80-\u2FDF\u3000-\u303F\u3040-\u30FF\u3100-\u31BF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFFEF]/;

function placeholders(s: string): string[] {
  return [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'tests' ? [] : sourceFiles(p);
    return /\.(svelte|ts)$/.test(name) ? [p] : [];
  });
}

describe('locale files', () => {
  it('have identical key sets', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(zh).sort());
  });

  it('English has no CJK characters', () => {
    const offenders = Object.entries(en).filter(([, v]) => CJK.test(v));
    expect(offenders).toEqual([]);
  });

  it('Chinese strings are Chinese (a missed translation shows up as plain ASCII)', () => {
    const allowed = new Set(['lang.en']);
    const ascii = Object.entries(zh).filter(([k, v]) => !allowed.has(k) && !CJK.test(v) && /[a-z]{3}/i.test(v));
    expect(ascii).toEqual([]);
  });

  it('no value is empty, and placeholders agree between languages', () => {
    for (const [k, v] of Object.entries(zh)) {
      expect(v.trim(), k).not.toBe('');
      expect((en as Record<string, string>)[k].trim(), k).not.toBe('');
      expect(placeholders((en as Record<string, string>)[k]), k).toEqual(placeholders(v));
    }
  });

  it('every literal key used in the source exists', () => {
    const root = join(__dirname, '..');
    const missing: string[] = [];
    for (const f of sourceFiles(root)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/\bt\('([a-zA-Z_.]+)'/g)) {
        if (!m[1].endsWith('.') && !(m[1] in zh)) missing.push(`${f}: ${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every status, visit kind, urgency, rating and action type is named in both languages', () => {
    const keys = [
      ...['new', 'accepted', 'assigned', 'resolved', 'feedback_given', 'rated', 'closed', 'rejected', 'merged', 'reopened'].map((s) => 'status.' + s),
      ...['daily', 'sweep', 'evening_talk'].map((s) => 'visitKind.' + s),
      ...['low', 'normal', 'high', 'urgent'].map((s) => 'urgency.' + s),
      ...['satisfied', 'basically', 'not_satisfied'].map((s) => 'rating.' + s),
      ...['collected', 'triaged', 'assigned', 'reassigned', 'escalated', 'progress', 'resolved', 'feedback_given', 'rated', 'reopened', 'closed', 'meeting_decision'].map((s) => 'action.' + s),
      ...['network', 'not_joined', 'enrollment_invalid', 'bad_enrollment_code', 'unauthorized', 'invalid_input', 'unknown_grid', 'photo_not_here_yet', 'photo_too_large'].map((s) => 'error.' + s),
    ];
    for (const k of keys) {
      expect(zh, k).toHaveProperty([k]);
      expect(en, k).toHaveProperty([k]);
    }
  });

  it('visit kinds read as the walkers say them', () => {
    expect(zh['visitKind.daily']).toBe('日常走访');
    expect(zh['visitKind.sweep']).toBe('集中排查');
    expect(zh['visitKind.evening_talk']).toBe('夜谈');
    expect(zh['rating.satisfied']).toBe('满意');
    expect(zh['rating.basically']).toBe('基本满意');
    expect(zh['rating.not_satisfied']).toBe('不满意');
    expect(zh['tab.grids']).toBe('网格');
    expect(zh['tab.requests']).toBe('诉求');
    expect(zh['tab.sync']).toBe('同步');
  });
});
