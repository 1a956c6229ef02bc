// The latest realtime event of the open collection, shared by the table and the record panel.
import type { RecordModel } from "../../lib/api";
import { store } from "../../lib/store";

export interface RemoteEvent {
  action: string;
  record: RecordModel;
  seq: number;
}

export const remoteEvents = store<RemoteEvent | null>(null);
