// The OAuth2 accounts linked to an auth record (`_externalAuths`), with unlink.
import { useEffect, useState } from "preact/hooks";
import { errorMessage, pb, type CollectionModel, type RecordModel } from "../../lib/api";
import { toast, toastError } from "../../lib/toast";
import { confirm } from "../../ui/dialog";
import { formatDate, Spinner } from "../../ui/misc";

export function ExternalAuths(props: { collection: CollectionModel; record: RecordModel }) {
  const [list, setList] = useState<RecordModel[] | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    pb.collection("_externalAuths")
      .getFullList({
        filter: pb.filter("recordRef = {:record} && collectionRef = {:collection}", {
          record: props.record.id,
          collection: props.collection.id,
        }),
        sort: "provider",
      })
      .then(setList)
      .catch((e) => setError(errorMessage(e)));
  }, [props.record.id]);

  const unlink = async (item: RecordModel) => {
    const ok = await confirm({
      title: `Unlink ${item.provider}?`,
      body: <p>This user will no longer be able to sign in with this {String(item.provider)} account (until they link it again).</p>,
      confirm: "Unlink",
      danger: true,
    });
    if (!ok) return;
    try {
      await pb.collection("_externalAuths").delete(item.id);
      setList((prev) => prev?.filter((x) => x.id !== item.id) ?? null);
      toast(`Unlinked ${item.provider}.`);
    } catch (e) {
      toastError(e);
    }
  };

  // Collections without OAuth2 show the section only when old links remain.
  const enabled = !!(props.collection as { oauth2?: { enabled?: boolean } }).oauth2?.enabled;
  if (!enabled && !error && (list === null || !list.length)) return null;

  return (
    <section class="external-auths" aria-label="Linked OAuth2 accounts">
      <h3>Linked OAuth2 accounts</h3>
      {error ? (
        <p class="form-error">{error}</p>
      ) : list === null ? (
        <Spinner />
      ) : !list.length ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="file-list">
          {list.map((item) => (
            <li key={item.id} class="file-item">
              <span class="file-name">
                <strong>{String(item.provider)}</strong> <span class="mono muted">{String(item.providerId)}</span>
                <small class="muted"> · linked {formatDate(String(item.created ?? ""))}</small>
              </span>
              <button type="button" class="btn btn-small" onClick={() => void unlink(item)}>
                Unlink
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
