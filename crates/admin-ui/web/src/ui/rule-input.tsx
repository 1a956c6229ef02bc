// The filter-language input used for API rules and for the records filter bar. It checks the
// text against the (possibly unsaved) collection as you type, marks an error at its position,
// and completes field names, `@request.*`, `@collection.*` and functions.
//
// A textarea with a transparent background sits on a "mirror" div that has the same font,
// padding and wrapping; the mirror draws the error's wavy underline under the textarea's own
// text, and holds a zero-width anchor at the start of the word being completed, which places
// the suggestion list.
import type { ComponentChildren } from "preact";
import { useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ClientResponseError, errorMessage, pb, type CollectionModel } from "../lib/api";
import { collections } from "../lib/schema";
import { useStore } from "../lib/store";
import { suggest, wordAt, type Suggestion } from "./rule-complete";

export interface RuleInputProps {
  value: string;
  onValue: (value: string) => void;
  /** The collection the text is evaluated against; may be an unsaved draft. */
  collection: Partial<CollectionModel>;
  /** "rule": an API rule (superuser-only, `null` allowed by the caller); "filter": a list filter. */
  mode: "rule" | "filter";
  placeholder?: string;
  /** Called on Enter without Shift (the filter bar applies the filter). */
  onSubmit?: () => void;
  id?: string;
  name?: string;
  "aria-label"?: string;
  /** Optional: disables editing (the caller's "superusers only" lock, for instance). */
  disabled?: boolean;
  /** Optional: hides the "?" syntax help button (default: shown). */
  noHelp?: boolean;
}

/** The server's answer about one text. */
type Check =
  | { state: "ok"; text: string; key: string }
  | { state: "error"; text: string; key: string; message: string; start: number | null; end: number | null }
  | { state: "note"; text: string; key: string; message: string };

interface Menu {
  /** Where the word being completed starts; it ends at the caret. */
  start: number;
  caret: number;
  items: Suggestion[];
  active: number;
}

const CHECK_PATH = "/api/collections/meta/check-rule";
const CHECK_DELAY_MS = 250;
const MAX_LINES = 8;

/** The part of the collection the server needs to check an expression against it. */
function checkable(c: Partial<CollectionModel>): Record<string, unknown> {
  const out: Record<string, unknown> = { name: c.name ?? "", type: c.type ?? "base", fields: c.fields ?? [] };
  if (c.id) out.id = c.id;
  if (c.type === "view") out.viewQuery = (c as { viewQuery?: string }).viewQuery ?? "";
  return out;
}

/** The parts of the draft an expression's meaning depends on. */
function checkKey(draft: Record<string, unknown>): string {
  const fields = Array.isArray(draft.fields) ? (draft.fields as Record<string, unknown>[]) : [];
  return JSON.stringify([
    draft.id,
    draft.name,
    draft.type,
    draft.viewQuery,
    fields.map((f) => [f?.id, f?.name, f?.type, f?.collectionId, f?.maxSelect, f?.hidden]),
  ]);
}

/** Text the filter bar treats as a quick search: no operator, not an `@` name. */
export function isQuickSearch(raw: string): boolean {
  const text = raw.trim();
  return Boolean(text) && !/[=<>~!&|()]/.test(text) && !text.startsWith("@");
}

/** Why `draft` cannot be checked yet, or null. */
function uncheckable(draft: Record<string, unknown>): string | null {
  if (draft.type === "view" && !String(draft.viewQuery ?? "").trim()) return "write the view query first.";
  return null;
}

function offset(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? Math.trunc(value) : null;
}

/** The span to mark: the server's, clamped; a null or empty span is a point. */
function markRange(text: string, start: number | null, end: number | null): [number, number] {
  const len = text.length;
  if (start === null) return [len, len];
  const s = Math.min(Math.max(start, 0), len);
  const e = end === null ? s : Math.min(Math.max(end, s), len);
  // An underline under whitespace alone would not show.
  if (e > s && !text.slice(s, e).trim()) return [s, s];
  return [s, e];
}

export function RuleInput(props: RuleInputProps) {
  const all = useStore(collections);
  const uid = useId();
  const listId = `${uid}-list`;
  const errorId = `${uid}-error`;
  const helpId = `${uid}-help`;
  const textRef = useRef<HTMLTextAreaElement>(null);
  const mirrorRef = useRef<HTMLDivElement>(null);
  const anchorRef = useRef<HTMLSpanElement>(null);
  const listRef = useRef<HTMLUListElement>(null);
  const pendingCaret = useRef<number | null>(null);
  const [check, setCheck] = useState<Check | null>(null);
  const [menu, setMenu] = useState<Menu | null>(null);
  const [listPos, setListPos] = useState<Record<string, string> | null>(null);
  const [relayout, setRelayout] = useState(0);
  const [help, setHelp] = useState(false);

  const draft = useMemo(() => checkable(props.collection), [props.collection]);
  const draftRef = useRef(draft);
  draftRef.current = draft;
  // Re-check when what names resolve to changes, not on every edit of a field's options.
  const key = useMemo(() => checkKey(draft), [draft]);
  const value = props.value ?? "";

  // Live check: one request per pause in typing; a newer text or collection cancels the older
  // request, and its answer is dropped even if it arrives.
  useEffect(() => {
    // Empty is valid (everyone / no filter); in the filter bar, words without an operator are
    // a quick search, not an expression (the records browser turns them into one).
    if (value === "" || (props.mode === "filter" && isQuickSearch(value))) {
      setCheck(null);
      return;
    }
    // What the server would refuse as a collection is not sent (a 4xx is a console error).
    const unusable = uncheckable(draftRef.current);
    if (unusable) {
      setCheck({ state: "note", text: value, key, message: unusable });
      return;
    }
    let current = true;
    const abort = new AbortController();
    const timer = setTimeout(() => {
      pb.send<{ ok?: boolean; message?: string; start?: unknown; end?: unknown }>(CHECK_PATH, {
        method: "POST",
        body: { collection: draftRef.current, rule: value },
        requestKey: null,
        signal: abort.signal,
      }).then(
        (res) => {
          if (!current) return;
          if (res?.ok) setCheck({ state: "ok", text: value, key });
          else
            setCheck({
              state: "error",
              text: value,
              key,
              message: res?.message || "Invalid expression.",
              start: offset(res?.start),
              end: offset(res?.end),
            });
        },
        (error: unknown) => {
          if (!current) return;
          if (error instanceof ClientResponseError && error.isAbort) return;
          setCheck({ state: "note", text: value, key, message: errorMessage(error) });
        },
      );
    }, CHECK_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
      abort.abort();
    };
  }, [value, key, props.mode]);

  const fresh = check !== null && check.text === value && check.key === key;
  const error = check?.state === "error" && value !== "" ? check : null;
  const mark = error && fresh ? markRange(value, error.start, error.end) : null;
  // While the caret's last word is still being typed, an error about the end of the text is
  // most likely "not finished yet": shown, but quietly, until the input loses focus.
  const [focused, setFocused] = useState(false);
  const soft = Boolean(focused && error && (error.start === null || (error.end ?? error.start) >= value.trimEnd().length));

  // Auto-grow to the content, up to MAX_LINES; the mirror follows the textarea's scroll and
  // its scrollbar (which narrows the text).
  const fit = () => {
    const ta = textRef.current;
    const mirror = mirrorRef.current;
    if (!ta || !mirror || !ta.getClientRects().length) return;
    const style = getComputedStyle(ta);
    const line = parseFloat(style.lineHeight) || 20;
    const chrome =
      parseFloat(style.paddingTop) +
      parseFloat(style.paddingBottom) +
      parseFloat(style.borderTopWidth) +
      parseFloat(style.borderBottomWidth);
    const max = Math.ceil(line * MAX_LINES + chrome);
    ta.style.height = "auto";
    const wanted = ta.scrollHeight + parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
    ta.style.height = `${Math.min(wanted, max)}px`;
    ta.style.overflowY = wanted > max ? "auto" : "hidden";
    const scrollbar = ta.offsetWidth - ta.clientWidth - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth);
    mirror.style.paddingRight = `${parseFloat(style.paddingRight) + Math.max(0, scrollbar)}px`;
    mirror.scrollTop = ta.scrollTop;
  };

  useLayoutEffect(() => {
    fit();
    const ta = textRef.current;
    if (ta && pendingCaret.current !== null && document.activeElement === ta) {
      ta.setSelectionRange(pendingCaret.current, pendingCaret.current);
    }
    pendingCaret.current = null;
  }, [value, mark?.[0], mark?.[1]]);

  useEffect(() => {
    const ta = textRef.current;
    if (!ta || typeof ResizeObserver === "undefined") return;
    let width = -1;
    const observer = new ResizeObserver(() => {
      if (ta.clientWidth === width) return;
      width = ta.clientWidth;
      fit();
    });
    observer.observe(ta);
    return () => observer.disconnect();
  }, []);

  // The suggestion list sits under the word being completed (above it when there is no room),
  // in viewport coordinates so that no scrolling ancestor clips it.
  useLayoutEffect(() => {
    const anchor = anchorRef.current;
    const ta = textRef.current;
    const list = listRef.current;
    if (!menu || !anchor || !ta || !list) {
      if (listPos) setListPos(null);
      return;
    }
    const a = anchor.getBoundingClientRect();
    const box = ta.getBoundingClientRect();
    const line = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    const top = Math.min(Math.max(a.top, box.top), box.bottom - line);
    const below = innerHeight - (top + line) - 8;
    const above = top - 8;
    const width = list.offsetWidth;
    const left = Math.max(8, Math.min(a.left - 10, innerWidth - width - 8));
    const pos: Record<string, string> = { left: `${left}px` };
    if (below >= 160 || below >= above) {
      pos.top = `${top + line + 2}px`;
      pos.maxHeight = `${Math.max(80, Math.min(280, below))}px`;
    } else {
      pos.bottom = `${innerHeight - top + 2}px`;
      pos.maxHeight = `${Math.max(80, Math.min(280, above))}px`;
    }
    if (JSON.stringify(pos) !== JSON.stringify(listPos)) setListPos(pos);
    const active = list.children[menu.active] as HTMLElement | undefined;
    if (active) {
      if (active.offsetTop < list.scrollTop) list.scrollTop = active.offsetTop;
      else if (active.offsetTop + active.offsetHeight > list.scrollTop + list.clientHeight)
        list.scrollTop = active.offsetTop + active.offsetHeight - list.clientHeight;
    }
  }, [menu, relayout, listPos]);

  useEffect(() => {
    if (!menu) return;
    const onMove = (e: Event) => {
      if (e.target === listRef.current) return;
      setRelayout((n) => n + 1);
    };
    addEventListener("scroll", onMove, { capture: true, passive: true });
    addEventListener("resize", onMove, { passive: true });
    return () => {
      removeEventListener("scroll", onMove, { capture: true });
      removeEventListener("resize", onMove);
    };
  }, [menu !== null]);

  /** Recomputes the suggestions for the caret; `open` opens the list if it is closed. */
  const complete = (open: boolean, text?: string) => {
    const ta = textRef.current;
    if (!ta) return;
    const source = text ?? ta.value;
    const caret = ta.selectionStart;
    if (caret !== ta.selectionEnd) {
      setMenu(null);
      return;
    }
    const found = wordAt(source, caret);
    if (!found || (!found.word && !open) || (!open && !menu)) {
      setMenu(null);
      return;
    }
    const items = suggest(found.word, { draft: props.collection, all });
    if (!items.length || (items.length === 1 && items[0].text === found.word)) {
      setMenu(null);
      return;
    }
    const previous = menu?.items[menu.active]?.text;
    const keep = previous ? items.findIndex((item) => item.text === previous) : -1;
    setMenu({ start: found.start, caret, items, active: keep >= 0 ? keep : 0 });
  };

  /** Replaces `[from, to)` with `text`, through the editing stack when possible (keeps undo). */
  const replace = (from: number, to: number, text: string) => {
    const ta = textRef.current;
    if (!ta) return;
    if (document.activeElement !== ta) ta.focus();
    ta.setSelectionRange(from, to);
    let done = false;
    try {
      done = document.execCommand("insertText", false, text);
    } catch {
      done = false;
    }
    if (!done || ta.value.slice(from, from + text.length) !== text) {
      const next = ta.value.slice(0, from) + text + ta.value.slice(to);
      pendingCaret.current = from + text.length;
      ta.value = next;
      props.onValue(next);
    }
  };

  const accept = (index: number) => {
    if (!menu) return;
    const item = menu.items[index];
    if (!item) return;
    const ta = textRef.current;
    const caret = ta ? ta.selectionStart : menu.caret;
    replace(menu.start, caret, item.text);
    setMenu(null);
    // After `@request.` or `author.` the next level is offered straight away.
    if (/[.:]$/.test(item.text)) queueMicrotask(() => complete(true));
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.isComposing) return;
    if (menu && menu.items.length) {
      const n = menu.items.length;
      const plain = !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        setMenu({ ...menu, active: (menu.active + step + n) % n });
        return;
      }
      if (e.key === "PageDown" || e.key === "PageUp") {
        e.preventDefault();
        const step = e.key === "PageDown" ? 8 : -8;
        setMenu({ ...menu, active: Math.min(n - 1, Math.max(0, menu.active + step)) });
        return;
      }
      if ((e.key === "Enter" || e.key === "Tab") && plain) {
        e.preventDefault();
        accept(menu.active);
        return;
      }
      if (e.key === "Escape") {
        // Closes the list only, not a dialog around the input.
        e.preventDefault();
        e.stopPropagation();
        setMenu(null);
        return;
      }
    }
    if (e.key === " " && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      complete(true);
      return;
    }
    if (e.key === "Escape" && help) {
      e.preventDefault();
      e.stopPropagation();
      setHelp(false);
      return;
    }
    if (e.key === "Enter" && !e.shiftKey && !e.altKey && props.onSubmit) {
      e.preventDefault();
      props.onSubmit();
    }
  };

  const onInput = (e: Event) => {
    const ta = e.currentTarget as HTMLTextAreaElement;
    const input = e as InputEvent;
    props.onValue(ta.value);
    const typed = input.inputType === "insertText" && typeof input.data === "string" && /[A-Za-z0-9_.:@#]$/.test(input.data);
    const deleting = input.inputType?.startsWith("delete");
    if (typed) complete(true, ta.value);
    else if (deleting && menu) complete(false, ta.value);
    else setMenu(null);
  };

  const insertOperator = (op: string) => {
    const ta = textRef.current;
    if (!ta || props.disabled) return;
    const from = ta.selectionStart;
    const to = ta.selectionEnd;
    const before = ta.value.slice(0, from);
    const after = ta.value.slice(to);
    const lead = before && !/\s$/.test(before) ? " " : "";
    const tail = after && !/^\s/.test(after) ? " " : "";
    replace(from, to, `${lead}${op}${tail || (after ? "" : " ")}`);
  };

  const expanded = Boolean(menu && menu.items.length);
  const activeId = expanded ? `${uid}-opt-${menu!.active}` : undefined;
  const described = [error ? errorId : "", help ? helpId : ""].filter(Boolean).join(" ") || undefined;

  return (
    <div class={`rule-input rule-input-${props.mode}${props.disabled ? " is-disabled" : ""}${soft ? " is-soft" : ""}`}>
      <div class="rule-input-row">
        <div class="rule-input-box">
          <div class="rule-input-mirror" ref={mirrorRef} aria-hidden="true">
            {mirror(value, mark, expanded ? menu!.start : null, anchorRef)}
          </div>
          <textarea
            ref={textRef}
            id={props.id}
            name={props.name}
            class={`rule-input-text code-input${mark ? " has-mark" : ""}${soft ? " is-soft" : ""}`}
            rows={1}
            spellcheck={false}
            autocomplete="off"
            autocapitalize="off"
            autocorrect="off"
            disabled={props.disabled}
            aria-label={props["aria-label"]}
            role="combobox"
            aria-autocomplete="list"
            aria-haspopup="listbox"
            aria-expanded={expanded}
            aria-controls={listId}
            aria-activedescendant={activeId}
            aria-invalid={error ? true : undefined}
            aria-describedby={described}
            placeholder={props.placeholder ?? (props.mode === "rule" ? "Empty: everyone, guests included" : 'e.g. title ~ "abc" && created > @yesterday')}
            value={value}
            onInput={onInput}
            onKeyDown={onKeyDown}
            onKeyUp={(e) => {
              if (menu && ["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) complete(false);
            }}
            onClick={() => {
              if (menu) complete(false);
            }}
            onFocus={() => setFocused(true)}
            onBlur={() => {
              setFocused(false);
              setMenu(null);
            }}
            onScroll={(e) => {
              if (mirrorRef.current) mirrorRef.current.scrollTop = e.currentTarget.scrollTop;
              if (menu) setRelayout((n) => n + 1);
            }}
          />
          <ul
            ref={listRef}
            id={listId}
            role="listbox"
            aria-label="Suggestions"
            class={`rule-input-list${expanded ? "" : " hidden"}`}
            style={listPos ?? { visibility: "hidden" }}
          >
            {expanded &&
              menu!.items.map((item, i) => (
                <li
                  key={item.text}
                  id={`${uid}-opt-${i}`}
                  role="option"
                  aria-selected={i === menu!.active}
                  class={`rule-input-option kind-${item.kind}`}
                  title={item.detail}
                  onMouseDown={(e) => e.preventDefault()}
                  onMouseMove={(e) => {
                    // Only a moving pointer picks an item, not a list appearing under it.
                    if (!e.movementX && !e.movementY) return;
                    if (menu!.active !== i) setMenu({ ...menu!, active: i });
                  }}
                  onClick={(e) => {
                    // Inside a <label>, a click would also "activate" the textarea.
                    e.preventDefault();
                    accept(i);
                  }}
                >
                  <span class="rule-input-option-text">{highlight(item.text, value.slice(menu!.start, menu!.caret))}</span>
                  <span class="rule-input-option-detail">{item.detail}</span>
                </li>
              ))}
          </ul>
        </div>
        {!props.noHelp && (
          <button
            type="button"
            class="btn btn-small rule-input-help-toggle"
            aria-label="Filter syntax help"
            title="Filter syntax help"
            aria-expanded={help}
            aria-controls={helpId}
            onClick={(e) => {
              e.preventDefault();
              setHelp(!help);
            }}
          >
            ?
          </button>
        )}
      </div>
      {error && (
        <div
          id={errorId}
          class={`rule-input-error${fresh ? "" : " is-stale"}${soft ? " is-soft" : ""}`}
          role={soft ? "status" : "alert"}
          data-testid="rule-error"
        >
          {error.message}
        </div>
      )}
      {check?.state === "note" && fresh && (
        <div class="rule-input-note muted" data-testid="rule-note">
          Not checked: {check.message}
        </div>
      )}
      {help && <SyntaxHelp id={helpId} mode={props.mode} onInsert={insertOperator} />}
    </div>
  );
}

/** The mirror's content: the text, the error mark and the completion anchor. */
function mirror(
  text: string,
  mark: [number, number] | null,
  anchor: number | null,
  anchorRef: { current: HTMLSpanElement | null },
): ComponentChildren {
  const cuts = new Set<number>([0, text.length]);
  if (mark) {
    cuts.add(mark[0]);
    cuts.add(mark[1]);
  }
  if (anchor !== null) cuts.add(Math.min(anchor, text.length));
  const points = [...cuts].sort((a, b) => a - b);
  const out: ComponentChildren[] = [];
  for (let i = 0; i < points.length; i++) {
    const at = points[i];
    if (anchor !== null && at === Math.min(anchor, text.length)) {
      out.push(<span key={`anchor`} class="rule-input-anchor" ref={anchorRef} />);
    }
    if (mark && mark[0] === mark[1] && at === mark[0]) {
      out.push(
        <span key="point" class="rule-input-point" data-testid="rule-mark">
          <span />
        </span>,
      );
    }
    const next = points[i + 1];
    if (next === undefined || next === at) continue;
    const piece = text.slice(at, next);
    if (mark && mark[0] < mark[1] && at >= mark[0] && next <= mark[1]) {
      out.push(
        <mark key={`m${at}`} class="rule-input-mark" data-testid="rule-mark">
          {piece}
        </mark>,
      );
    } else {
      out.push(piece);
    }
  }
  // A trailing newline only takes a line when something follows it.
  out.push("\u200b");
  return out;
}

/** The suggestion with the typed part in bold. */
function highlight(text: string, typed: string): ComponentChildren {
  if (typed && text.toLowerCase().startsWith(typed.toLowerCase())) {
    return (
      <>
        <b>{text.slice(0, typed.length)}</b>
        {text.slice(typed.length)}
      </>
    );
  }
  return text;
}

const OPERATORS: [string, string][] = [
  ["=", "equal"],
  ["!=", "not equal"],
  [">", "greater than"],
  [">=", "greater than or equal"],
  ["<", "less than"],
  ["<=", "less than or equal"],
  ["~", "contains (or LIKE with % wildcards)"],
  ["!~", "does not contain"],
];

function SyntaxHelp(props: { id: string; mode: "rule" | "filter"; onInsert: (op: string) => void }) {
  const op = (text: string) => (
    <button
      type="button"
      class="rule-input-op"
      title={`Insert ${text}`}
      onMouseDown={(e) => e.preventDefault()}
      onClick={(e) => {
        e.preventDefault();
        props.onInsert(text);
      }}
    >
      {text}
    </button>
  );
  return (
    <div id={props.id} class="rule-input-help" role="region" aria-label="Filter syntax">
      <ul class="rule-input-ops">
        {OPERATORS.map(([text, meaning]) => (
          <li key={text}>
            {op(text)} <span>{meaning}</span>
          </li>
        ))}
        <li>
          {op("?=")} {op("?!=")} {op("?>")} {op("?>=")} {op("?<")} {op("?<=")} {op("?~")} {op("?!~")}{" "}
          <span>
            any of: true when at least one item matches (multiple relations, <code>:each</code>, <code>@collection</code>,{" "}
            <code>_via_</code>); the plain operators need every item to match
          </span>
        </li>
        <li>
          {op("&&")} <span>and</span> {op("||")} <span>or</span> {op("(")} {op(")")} <span>grouping</span>{" "}
          <code>// comment</code>
        </li>
      </ul>
      <p class="muted">
        Text in quotes (<code>"…"</code> or <code>'…'</code>); <code>null</code>, <code>true</code>, <code>false</code>.
        Ctrl+Space lists what can go at the cursor.{" "}
        {props.mode === "rule" ? (
          <>
            Examples: <code>@request.auth.id != ""</code> (signed-in users), <code>author = @request.auth.id</code>,{" "}
            <code>@request.body.role:isset = false</code>. An empty rule lets everyone in.
          </>
        ) : (
          <>
            Examples: <code>title ~ "draft"</code>, <code>created &gt;= @todayStart</code>, <code>tags:each ?= "news"</code>.
          </>
        )}
      </p>
    </div>
  );
}
