// Whole table rows that open something: the hall's tables (inbox, work and overdue, monthly list,
// the dashboard's lists) open a request from anywhere on its row, not only from a small link.

import type { Attachment } from 'svelte/attachments';

const INTERACTIVE = 'a, button, input, select, textarea, label, summary';

/**
 * Makes a row do `open` when it is clicked anywhere, or when Enter is pressed while it has the
 * focus (each row is one tab stop). A click on a link, button or field inside the row does its
 * own thing, and a click that ends a text selection (copying a phone number) opens nothing.
 */
export function rowAction(open: () => void): Attachment<HTMLElement> {
  return (el) => {
    el.tabIndex = 0;
    el.classList.add('row-link');
    const onClick = (e: MouseEvent) => {
      if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
      if (e.target instanceof Element && e.target.closest(INTERACTIVE)) return;
      if (globalThis.getSelection?.()?.toString()) return;
      open();
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Enter' || e.target !== el) return;
      e.preventDefault();
      open();
    };
    el.addEventListener('click', onClick);
    el.addEventListener('keydown', onKey);
    return () => {
      el.removeEventListener('click', onClick);
      el.removeEventListener('keydown', onKey);
      el.classList.remove('row-link');
      el.removeAttribute('tabindex');
    };
  };
}

/** A row that opens `target`, a hash route such as `#/hall/request/<id>`. */
export function rowLink(target: string): Attachment<HTMLElement> {
  return rowAction(() => {
    location.hash = target;
  });
}
