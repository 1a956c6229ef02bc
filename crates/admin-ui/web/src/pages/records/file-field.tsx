// A file field in the record panel: the stored files (remove / restore), the new ones (with
// previews), and a drop zone. The panel sends the changes as `field+` / `field-`.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { RecordModel } from "../../lib/api";
import { fileExtension } from "./cells";
import { isImageName, isMultiple, isPreviewableImage, originalFileName, type CollectionField } from "./fields";
import { fileUrl } from "./file-urls";
import { FieldBlock, inputId } from "./inputs";

export interface FileChanges {
  added: File[];
  removed: string[];
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function FileInput(props: {
  field: CollectionField;
  record: RecordModel | null;
  existing: string[];
  changes: FileChanges;
  onChanges: (changes: FileChanges) => void;
  token: string;
  error?: string;
  readOnly?: boolean;
}) {
  const { field, changes } = props;
  const multiple = isMultiple(field);
  const max = multiple ? Number(field.maxSelect) || 99 : 1;
  const [over, setOver] = useState(false);
  const [warning, setWarning] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const id = inputId(field);
  const kept = props.existing.filter((n) => !changes.removed.includes(n));
  const count = kept.length + changes.added.length;
  const maxSize = Number(field.maxSize) || 0;
  const mimeTypes: string[] = Array.isArray(field.mimeTypes) ? field.mimeTypes : [];

  const previews = useMemo(
    () => new Map(changes.added.map((f) => [f, f.type.startsWith("image/") ? URL.createObjectURL(f) : ""])),
    [changes.added],
  );
  useEffect(() => () => previews.forEach((url) => url && URL.revokeObjectURL(url)), [previews]);

  const add = (list: FileList | File[] | null) => {
    if (!list || !list.length) return;
    let files = [...list];
    const problems: string[] = [];
    if (maxSize) {
      const big = files.filter((f) => f.size > maxSize);
      if (big.length) problems.push(`${big.map((f) => f.name).join(", ")} larger than ${formatSize(maxSize)}`);
      files = files.filter((f) => f.size <= maxSize);
    }
    if (mimeTypes.length) {
      const wrong = files.filter((f) => f.type && !mimeTypes.includes(f.type));
      if (wrong.length) problems.push(`${wrong.map((f) => f.name).join(", ")}: type not allowed (${mimeTypes.join(", ")})`);
      files = files.filter((f) => !f.type || mimeTypes.includes(f.type));
    }
    if (!multiple) {
      // One file: the new one replaces the stored one.
      if (files.length) props.onChanges({ added: [files[0]], removed: [...props.existing] });
    } else {
      const room = Math.max(0, max - count);
      if (files.length > room) problems.push(`only ${max} file${max === 1 ? "" : "s"} allowed; ${files.length - room} left out`);
      props.onChanges({ ...changes, added: [...changes.added, ...files.slice(0, room)] });
    }
    setWarning(problems.join("; "));
  };

  const removeAdded = (file: File) => {
    const added = changes.added.filter((f) => f !== file);
    // A single field gets its stored file back when the replacement is dropped.
    props.onChanges(multiple ? { ...changes, added } : { added, removed: added.length ? changes.removed : [] });
  };

  const toggleRemoved = (name: string) => {
    const removed = changes.removed.includes(name)
      ? changes.removed.filter((n) => n !== name)
      : [...changes.removed, name];
    props.onChanges({ ...changes, removed });
  };

  return (
    <FieldBlock
      field={field}
      error={props.error || warning}
      group
      extra={<span class="muted count">{multiple ? `${count}/${max}` : ""}</span>}
    >
      <ul class="file-list" aria-label={`${field.name} files`}>
        {props.existing.map((name) => {
          const removed = changes.removed.includes(name);
          const url = props.record ? fileUrl(props.record, name, { token: field.protected ? props.token : "" }) : "";
          const waiting = field.protected && !props.token;
          return (
            <li key={name} class={`file-item${removed ? " removed" : ""}`} data-file={name}>
              {isImageName(name) && props.record && !waiting ? (
                <img
                  class="thumb thumb-lg"
                  src={fileUrl(props.record, name, { thumb: "100x100", token: field.protected ? props.token : "" })}
                  alt=""
                  width={44}
                  height={44}
                />
              ) : (
                <span class="file-badge file-badge-lg">{fileExtension(name)}</span>
              )}
              <span class="file-name">
                {url && !waiting ? (
                  <a href={url} target="_blank" rel="noopener noreferrer" title={name}>
                    {originalFileName(name)}
                  </a>
                ) : (
                  originalFileName(name)
                )}
                <small class="muted">{removed ? " · will be deleted on save" : ""}</small>
              </span>
              {!props.readOnly && (
                <button
                  type="button"
                  class="btn btn-small"
                  onClick={() => toggleRemoved(name)}
                  aria-label={`${removed ? "Restore" : "Remove"} ${name}`}
                >
                  {removed ? "Restore" : "Remove"}
                </button>
              )}
            </li>
          );
        })}
        {changes.added.map((file, i) => (
          <li key={`${file.name}-${i}`} class="file-item added" data-new-file={file.name}>
            {previews.get(file) && isPreviewableImage(file.name) ? (
              <img class="thumb thumb-lg" src={previews.get(file)} alt="" width={44} height={44} />
            ) : (
              <span class="file-badge file-badge-lg">{fileExtension(file.name)}</span>
            )}
            <span class="file-name">
              {file.name} <small class="muted">· {formatSize(file.size)} · new</small>
            </span>
            <button type="button" class="btn btn-small" onClick={() => removeAdded(file)} aria-label={`Remove new file ${file.name}`}>
              Remove
            </button>
          </li>
        ))}
      </ul>
      {!props.readOnly && (multiple ? count < max : true) && (
        <div
          class={`drop-zone${over ? " over" : ""}`}
          onDragOver={(e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragLeave={() => setOver(false)}
          onDrop={(e) => {
            e.preventDefault();
            setOver(false);
            add(e.dataTransfer?.files ?? null);
          }}
        >
          <span class="muted">Drop {multiple ? "files" : "a file"} here or</span>
          <label class="btn btn-small" for={id}>
            {multiple ? "Choose files" : props.existing.length || changes.added.length ? "Replace file" : "Choose a file"}
          </label>
          <input
            ref={input}
            id={id}
            class="visually-hidden"
            type="file"
            name={field.name}
            multiple={multiple}
            accept={mimeTypes.length ? mimeTypes.join(",") : undefined}
            data-testid={`file-input-${field.name}`}
            onChange={(e) => {
              add(e.currentTarget.files);
              // Let the same file be chosen again after a removal.
              if (input.current) input.current.value = "";
            }}
          />
        </div>
      )}
    </FieldBlock>
  );
}
