// Deleting many records: in batches when the server allows batch requests (one transaction per
// batch; a failed batch is retried one by one so every record gets its own outcome), else one
// request after another.
import { ClientResponseError, errorMessage, pb } from "../../lib/api";

export interface BulkResult {
  deleted: string[];
  failed: { id: string; message: string }[];
}

let batchSettings: Promise<{ enabled: boolean; maxRequests: number }> | null = null;

/** The server's batch settings (asked once per page load; a refusal means "no batch"). */
export function batchConfig(): Promise<{ enabled: boolean; maxRequests: number }> {
  batchSettings ??= pb.settings
    .getAll({ fields: "batch" })
    .then((s) => {
      const batch = (s.batch ?? {}) as { enabled?: boolean; maxRequests?: number };
      return { enabled: !!batch.enabled, maxRequests: Math.max(1, Number(batch.maxRequests) || 50) };
    })
    .catch(() => ({ enabled: false, maxRequests: 50 }));
  return batchSettings;
}

/** Forget the cached batch settings (after they may have changed). */
export function forgetBatchConfig() {
  batchSettings = null;
}

export async function deleteMany(
  collection: string,
  ids: string[],
  onProgress: (done: number) => void,
): Promise<BulkResult> {
  const result: BulkResult = { deleted: [], failed: [] };
  const report = () => onProgress(result.deleted.length + result.failed.length);
  const one = async (id: string) => {
    try {
      await pb.collection(collection).delete(id);
      result.deleted.push(id);
    } catch (e) {
      // Already gone counts as deleted: the user wanted it gone.
      if (e instanceof ClientResponseError && e.status === 404) result.deleted.push(id);
      else result.failed.push({ id, message: errorMessage(e) });
    }
    report();
  };

  const config = ids.length > 1 ? await batchConfig() : { enabled: false, maxRequests: 1 };
  if (config.enabled) {
    for (let i = 0; i < ids.length; i += config.maxRequests) {
      const chunk = ids.slice(i, i + config.maxRequests);
      const batch = pb.createBatch();
      for (const id of chunk) batch.collection(collection).delete(id);
      try {
        await batch.send();
        result.deleted.push(...chunk);
        report();
      } catch (e) {
        if (e instanceof ClientResponseError && e.status === 403) {
          // Batch was turned off meanwhile: carry on one by one.
          forgetBatchConfig();
        }
        for (const id of chunk) await one(id);
      }
    }
    return result;
  }
  for (const id of ids) await one(id);
  return result;
}
