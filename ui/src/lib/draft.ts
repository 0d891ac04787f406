// Debounced draft saving: a half-filled form survives the app being killed.

import { api } from './api';

export const DRAFT_DEBOUNCE_MS = 300;

export type DraftSaver = {
  schedule(value: unknown): void;
  flush(): Promise<void>;
  cancel(): void;
};

export function createDraftSaver(key: string, delay = DRAFT_DEBOUNCE_MS, put = api.draftPut): DraftSaver {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: { value: unknown } | null = null;
  const write = async () => {
    timer = undefined;
    if (!pending) return;
    const { value } = pending;
    pending = null;
    try {
      await put(key, value);
    } catch {
      /* a draft that fails to save is not worth an error on screen */
    }
  };
  return {
    schedule(value) {
      pending = { value };
      clearTimeout(timer);
      timer = setTimeout(write, delay);
    },
    async flush() {
      clearTimeout(timer);
      await write();
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
      pending = null;
    },
  };
}
