//! Scheduled backups: the `__pbAutoBackup__` cron job that `backups.cron` registers (and an
//! empty `backups.cron` removes), writing `@auto_pb_backup_<app>_<ts>.zip` and keeping only
//! the newest `backups.cronMaxKeep` of those, as PocketBase does. Also the boot step that
//! registers it from the stored settings and empties the scratch directory.

use std::sync::{Arc, Weak};

use futures_util::FutureExt as _;

use crate::state::settings::Backups as BackupSettings;
use crate::state::{AppState, SharedState};

/// PocketBase's id of the scheduled-backup job.
pub const AUTO_BACKUP_JOB: &str = "__pbAutoBackup__";

/// The name prefix of scheduled backups; only these are pruned by `cronMaxKeep`.
pub const AUTO_PREFIX: &str = "@auto_";

/// Boot: empties the scratch directory (the server opened its data, so a restore's old data
/// is no longer needed) and registers the scheduled backup from the stored settings.
pub fn spawn(state: &SharedState) {
    if let Some(dir) = &state.config.data_dir {
        super::restore::cleanup_after_boot(dir);
    }
    let state = state.clone();
    tokio::spawn(async move {
        match crate::settings::current(&state).await {
            Ok(settings) => apply_settings(&state, &settings.backups),
            Err(error) => {
                tracing::warn!(error = %error.message, "cannot read the backup schedule");
            }
        }
    });
}

/// Registers, replaces or removes the scheduled backup for `settings` (called at boot and on
/// every settings save).
pub fn apply_settings(state: &SharedState, settings: &BackupSettings) {
    if settings.cron.is_empty() {
        state.crons.remove(AUTO_BACKUP_JOB);
        return;
    }
    let job = auto_backup_job(Arc::downgrade(state));
    if let Err(error) = state.crons.add(AUTO_BACKUP_JOB, &settings.cron, job) {
        tracing::error!(%error, "cannot schedule the backups cron");
    }
}

fn auto_backup_job(state: Weak<AppState>) -> crate::state::crons::Job {
    Arc::new(move || {
        let state = state.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return Ok(());
            };
            run_auto_backup(&state).await
        }
        .boxed()
    })
}

/// One scheduled run: a backup under the automatic name, then the oldest automatic backups
/// beyond `cronMaxKeep` removed.
pub async fn run_auto_backup(state: &SharedState) -> Result<(), String> {
    let Some(_busy) = state.backups.try_begin() else {
        return Err("another backup or restore is running".into());
    };
    let settings = crate::settings::current(state)
        .await
        .map_err(|e| e.message)?;
    let place = super::place(state).await.map_err(|e| e.message)?;
    let name = super::default_name(&settings.meta.app_name, AUTO_PREFIX, chrono::Utc::now());
    super::make_backup(state, &place, &name)
        .await
        .map_err(|e| e.to_string())?;
    let mut autos: Vec<super::BackupInfo> = super::list_place(&place)
        .await
        .map_err(|e| e.message)?
        .into_iter()
        .filter(|info| info.key.starts_with(AUTO_PREFIX))
        .collect();
    // Newest first: by time, then by name (the name carries the time to the second).
    autos.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| b.key.cmp(&a.key)));
    let keep = settings.backups.cron_max_keep.max(1) as usize;
    for old in autos.into_iter().skip(keep) {
        let removed = match &place {
            super::Place::Local(dir) => tokio::fs::remove_file(dir.join(&old.key))
                .await
                .map_err(|e| e.to_string()),
            super::Place::S3(storage) => storage.delete(&old.key).await.map_err(|e| e.to_string()),
        };
        if let Err(error) = removed {
            tracing::warn!(%error, backup = %old.key, "cannot prune an old automatic backup");
        }
    }
    Ok(())
}
