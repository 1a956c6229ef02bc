// A small rich-text editor for `editor` fields: contenteditable with a toolbar (bold, italic,
// link, lists, headings, quote, clear) and an HTML source view. Stored HTML and pasted HTML go
// through an allowlist sanitizer before they reach the live document.
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { LinkIcon } from "./icons";

const ALLOWED: Record<string, string[]> = {
  p: [], br: [], div: [], span: [], b: [], strong: [], i: [], em: [], u: [], s: [], strike: [], del: [], ins: [],
  sub: [], sup: [], mark: [], small: [], code: [], pre: [], blockquote: [], hr: [],
  h1: [], h2: [], h3: [], h4: [], h5: [], h6: [],
  ul: [], ol: ["start"], li: [],
  a: ["href", "title"],
  img: ["src", "alt", "title", "width", "height"],
  table: [], thead: [], tbody: [], tfoot: [], tr: [], th: ["colspan", "rowspan"], td: ["colspan", "rowspan"],
  figure: [], figcaption: [],
};
// Elements removed with their content; any other unknown element is replaced by its children.
const DROPPED = new Set([
  "script", "style", "iframe", "frame", "frameset", "object", "embed", "template", "noscript", "svg", "math",
  "form", "input", "button", "textarea", "select", "option", "link", "meta", "head", "title", "base", "audio",
  "video", "canvas", "applet",
]);

function safeUrl(url: string, image: boolean): boolean {
  const u = url.trim();
  if (image) return /^(https?:\/\/|\/(?!\/)|data:image\/(png|gif|jpe?g|webp);base64,)/i.test(u);
  return /^(https?:\/\/|mailto:|tel:|#|\/(?!\/)|\.{0,2}\/)/i.test(u) || !/^[a-z][a-z0-9+.-]*:/i.test(u);
}

/** The HTML with only allowlisted elements, attributes and URL schemes left. */
export function sanitizeHtml(html: string): string {
  if (!html) return "";
  // A DOMParser document is inert: nothing in it runs or loads while we clean it.
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const clean = (node: Node) => {
    for (const child of [...node.childNodes]) {
      if (child.nodeType === Node.COMMENT_NODE || child.nodeType === Node.PROCESSING_INSTRUCTION_NODE) {
        child.remove();
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      const el = child as Element;
      const tag = el.tagName.toLowerCase();
      if (DROPPED.has(tag)) {
        el.remove();
        continue;
      }
      clean(el);
      const allowed = ALLOWED[tag];
      if (!allowed) {
        el.replaceWith(...el.childNodes);
        continue;
      }
      for (const attr of [...el.attributes]) {
        const name = attr.name.toLowerCase();
        if (!allowed.includes(name)) el.removeAttribute(attr.name);
        else if ((name === "href" || name === "src") && !safeUrl(attr.value, name === "src")) el.removeAttribute(attr.name);
      }
      if (tag === "a" && el.getAttribute("href")) el.setAttribute("rel", "noopener noreferrer");
      if (tag === "img" && !el.getAttribute("src")) el.remove();
    }
  };
  clean(doc.body);
  return doc.body.innerHTML;
}

function normalize(html: string): string {
  const trimmed = html.trim();
  return /^(<p>)?(<br\s*\/?>)?(<\/p>)?$/i.test(trimmed) ? "" : trimmed;
}

type Command = { label: string | JSX.Element; title: string; run: () => void; state?: string };

export function RichEditor(props: { id?: string; value: string; onValue: (html: string) => void; label: string }) {
  const area = useRef<HTMLDivElement>(null);
  const emitted = useRef<string | null>(null);
  const savedRange = useRef<Range | null>(null);
  const [source, setSource] = useState(false);
  const [linking, setLinking] = useState<string | null>(null);
  const [active, setActive] = useState<Record<string, boolean>>({});

  // Load the value into the editable area unless it came from the area itself. While the user
  // types, the area is the truth: a re-render may still carry an older emitted value.
  useEffect(() => {
    const el = area.current;
    if (!el || source) return;
    if (emitted.current !== null && (emitted.current === props.value || document.activeElement === el)) return;
    el.innerHTML = sanitizeHtml(props.value);
    emitted.current = props.value;
  }, [props.value, source]);

  useEffect(() => {
    const onSelection = () => {
      const el = area.current;
      if (!el || !el.contains(document.getSelection()?.anchorNode ?? null)) return;
      const state: Record<string, boolean> = {};
      for (const name of ["bold", "italic", "insertUnorderedList", "insertOrderedList"]) {
        try {
          state[name] = document.queryCommandState(name);
        } catch {
          state[name] = false;
        }
      }
      let block = "";
      try {
        block = String(document.queryCommandValue("formatBlock") || "").toLowerCase();
      } catch {
        block = "";
      }
      state.h2 = block === "h2";
      state.h3 = block === "h3";
      state.blockquote = block === "blockquote";
      setActive(state);
    };
    document.addEventListener("selectionchange", onSelection);
    return () => document.removeEventListener("selectionchange", onSelection);
  }, []);

  const emit = () => {
    const el = area.current;
    if (!el) return;
    // The browser's editing commands copy computed styles onto what they insert: drop them
    // (the stored HTML stays semantic, and the strict CSP never meets a style attribute).
    for (const styled of el.querySelectorAll("[style]")) styled.removeAttribute("style");
    const html = normalize(el.innerHTML);
    emitted.current = html;
    props.onValue(html);
  };

  const exec = (command: string, value?: string) => {
    area.current?.focus();
    try {
      document.execCommand("styleWithCSS", false, "false");
      document.execCommand("defaultParagraphSeparator", false, "p");
    } catch {
      // Older engines: the defaults are fine.
    }
    document.execCommand(command, false, value);
    emit();
  };

  const toggleBlock = (tag: string) => exec("formatBlock", active[tag] ? "p" : tag);

  const startLink = () => {
    const selection = document.getSelection();
    if (selection && selection.rangeCount && area.current?.contains(selection.anchorNode)) {
      savedRange.current = selection.getRangeAt(0).cloneRange();
    }
    const anchor = (selection?.anchorNode?.parentElement ?? null)?.closest("a");
    setLinking(anchor?.getAttribute("href") ?? "https://");
  };

  const applyLink = (url: string | null) => {
    const range = savedRange.current;
    setLinking(null);
    area.current?.focus();
    if (range) {
      const selection = document.getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
    }
    if (url === null || !url.trim() || url.trim() === "https://") exec("unlink");
    else if (safeUrl(url, false)) {
      if (range && range.collapsed) exec("insertHTML", sanitizeHtml(`<a href="${escapeAttr(url.trim())}">${escapeText(url.trim())}</a>`));
      else exec("createLink", url.trim());
    }
  };

  const commands: Command[] = [
    { label: "B", title: "Bold (Ctrl+B)", run: () => exec("bold"), state: "bold" },
    { label: "I", title: "Italic (Ctrl+I)", run: () => exec("italic"), state: "italic" },
    { label: "H2", title: "Heading", run: () => toggleBlock("h2"), state: "h2" },
    { label: "H3", title: "Subheading", run: () => toggleBlock("h3"), state: "h3" },
    { label: "•", title: "Bulleted list", run: () => exec("insertUnorderedList"), state: "insertUnorderedList" },
    { label: "1.", title: "Numbered list", run: () => exec("insertOrderedList"), state: "insertOrderedList" },
    { label: "❝", title: "Quote", run: () => toggleBlock("blockquote"), state: "blockquote" },
    { label: <LinkIcon />, title: "Link (Ctrl+K)", run: startLink },
    { label: "⌫", title: "Clear formatting", run: () => {
      exec("removeFormat");
      exec("formatBlock", "p");
    } },
  ];

  return (
    <div class="rich-editor">
      <div class="rich-toolbar" role="toolbar" aria-label={`${props.label} formatting`}>
        {!source &&
          commands.map((c) => (
            <button
              key={c.title}
              type="button"
              class={`btn btn-small rich-btn${c.state && active[c.state] ? " on" : ""}`}
              title={c.title}
              aria-label={c.title}
              aria-pressed={c.state ? !!active[c.state] : undefined}
              // Keep the text selection: act on mousedown, before the button takes focus.
              onMouseDown={(e) => e.preventDefault()}
              onClick={c.run}
            >
              {c.label}
            </button>
          ))}
        <button
          type="button"
          class={`btn btn-small rich-btn rich-source${source ? " on" : ""}`}
          aria-pressed={source}
          title="Edit the HTML source"
          onClick={() => {
            if (source) emitted.current = null;
            setSource(!source);
          }}
        >
          HTML
        </button>
      </div>
      {linking !== null && (
        <div class="rich-link row">
          <input
            type="url"
            aria-label="Link address"
            value={linking}
            autoFocus
            onInput={(e) => setLinking(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter") {
                e.preventDefault();
                applyLink(linking);
              } else if (e.key === "Escape") {
                e.preventDefault();
                e.stopPropagation();
                setLinking(null);
                area.current?.focus();
              }
            }}
          />
          <button type="button" class="btn btn-small btn-primary" onClick={() => applyLink(linking)}>
            Apply
          </button>
          <button type="button" class="btn btn-small" onClick={() => applyLink(null)}>
            Remove link
          </button>
        </div>
      )}
      {source ? (
        <textarea
          id={props.id}
          class="code-input rich-source-text"
          rows={8}
          spellcheck={false}
          aria-label={`${props.label} HTML`}
          value={props.value}
          onInput={(e) => props.onValue(e.currentTarget.value)}
        />
      ) : (
        <div
          ref={area}
          id={props.id}
          class="rich-area"
          contentEditable
          role="textbox"
          aria-multiline="true"
          aria-label={props.label}
          onInput={emit}
          onBlur={emit}
          onFocus={() => {
            try {
              document.execCommand("defaultParagraphSeparator", false, "p");
            } catch {
              // Not supported: the browser's default separator is used.
            }
          }}
          onKeyDown={(e) => {
            if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
              e.preventDefault();
              startLink();
            }
          }}
          onPaste={(e) => {
            const data = e.clipboardData;
            if (!data) return;
            e.preventDefault();
            const html = data.getData("text/html");
            if (html) document.execCommand("insertHTML", false, sanitizeHtml(html));
            else document.execCommand("insertText", false, data.getData("text/plain"));
            emit();
          }}
          onDrop={(e) => {
            // Dropped HTML would bypass the sanitizer: take only its text.
            const text = e.dataTransfer?.getData("text/plain");
            if (e.dataTransfer?.types.includes("text/html")) {
              e.preventDefault();
              if (text) document.execCommand("insertText", false, text);
              emit();
            }
          }}
        />
      )}
    </div>
  );
}

function escapeAttr(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
