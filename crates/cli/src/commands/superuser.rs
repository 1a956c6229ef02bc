//! `plinth superuser create|update|upsert|delete`.

use anyhow::Context;
use server::superusers::{self, Saved};

use crate::config::{GlobalArgs, SuperuserAction, SuperuserArgs};

pub async fn run(global: &GlobalArgs, args: SuperuserArgs) -> anyhow::Result<()> {
    let cost = global.hash_cost()?;
    let store = super::open_store(global, false).await?;
    let result = match &args.action {
        SuperuserAction::Create { email, password } => {
            superusers::create(store.as_ref(), email, password, cost)
                .await
                .map(|_| format!("Successfully created new superuser {email:?}!"))
                .with_context(|| "failed to create new superuser account")
        }
        SuperuserAction::Update { email, password } => {
            superusers::update(store.as_ref(), email, password, cost)
                .await
                .map(|_| format!("Successfully changed superuser {email:?} password!"))
                .with_context(|| format!("failed to change superuser {email:?} password"))
        }
        SuperuserAction::Upsert { email, password } => {
            superusers::upsert(store.as_ref(), email, password, cost)
                .await
                .map(|saved| match saved {
                    Saved::Created => format!("Successfully created new superuser {email:?}!"),
                    Saved::Updated => format!("Successfully saved superuser {email:?}!"),
                })
                .with_context(|| "failed to save superuser")
        }
        SuperuserAction::Delete { email } => superusers::delete(store.as_ref(), email)
            .await
            .map(|_| format!("Successfully deleted superuser {email:?}!"))
            .with_context(|| format!("failed to delete superuser {email:?}")),
    };
    store.close().await.context("closing the database")?;
    println!("{}", result?);
    Ok(())
}
