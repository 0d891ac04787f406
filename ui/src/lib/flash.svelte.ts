// A short message shown over the screen (saved, sent, failed…). The text is a function so that it
// follows a change of language while it is shown.

export type FlashText = () => string;

export const flash = $state<{ text: FlashText | null; kind: 'ok' | 'error'; seq: number }>({ text: null, kind: 'ok', seq: 0 });
let timer: ReturnType<typeof setTimeout> | undefined;

export function showFlash(text: FlashText, kind: 'ok' | 'error' = 'ok', ms = 3000): void {
  flash.text = text;
  flash.kind = kind;
  flash.seq++;
  clearTimeout(timer);
  timer = setTimeout(() => (flash.text = null), ms);
}

export function clearFlash(): void {
  clearTimeout(timer);
  flash.text = null;
}
