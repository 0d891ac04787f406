// A short message shown over the screen (saved, sent, failed…).

export const flash = $state<{ text: string; kind: 'ok' | 'error'; seq: number }>({ text: '', kind: 'ok', seq: 0 });
let timer: ReturnType<typeof setTimeout> | undefined;

export function showFlash(text: string, kind: 'ok' | 'error' = 'ok', ms = 4000): void {
  flash.text = text;
  flash.kind = kind;
  flash.seq++;
  clearTimeout(timer);
  timer = setTimeout(() => (flash.text = ''), ms);
}

export function clearFlash(): void {
  clearTimeout(timer);
  flash.text = '';
}
