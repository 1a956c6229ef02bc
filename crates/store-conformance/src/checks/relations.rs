//! Relations: targets must exist; deletes cascade, clear or are blocked (`RequiredReference`)
//! as each referencing field says, inside the delete's transaction; truncation and auth
//! record deletes follow the same rules.

use domain::collection::{AUTH_RECORD_DEPENDENTS, USERS_ID, USERS_NAME};
use domain::{StoreError, WriteResult};
use serde_json::{Value, json};

use crate::Engine;
use crate::support::{Fixture, base, open, relation, text, validation_code};

/// `articles` ← `comments` (required, cascade), `likes` (required multiple, no cascade),
/// `mentions` (optional single and multiple).
async fn relation_fixture(fx: &Fixture) -> String {
    let articles = fx
        .create_collection(base("articles", vec![text("title")]))
        .await;
    let id = articles.id.clone();
    fx.create_collection(base(
        "comments",
        vec![relation("article", &id, 1, true, true)],
    ))
    .await;
    fx.create_collection(base(
        "likes",
        vec![relation("articles", &id, 5, true, false)],
    ))
    .await;
    fx.create_collection(base(
        "mentions",
        vec![
            relation("one", &id, 1, false, false),
            relation("many", &id, 5, false, false),
        ],
    ))
    .await;
    id
}

pub async fn relation_targets_must_exist(engine: &Engine) {
    let fx = open(engine).await;
    relation_fixture(&fx).await;
    let article = fx.create("articles", json!({"title": "a"})).await;
    let error = fx
        .try_create("mentions", json!({"one": "missing00000000"}))
        .await
        .expect_err("missing single target");
    assert_eq!(
        validation_code(&error, "one").as_deref(),
        Some("validation_missing_rel_records"),
        "{error:?}"
    );
    let error = fx
        .try_create(
            "mentions",
            json!({"many": [article.id(), "missing00000000"]}),
        )
        .await
        .expect_err("one of several missing");
    assert_eq!(
        validation_code(&error, "many").as_deref(),
        Some("validation_missing_rel_records"),
        "{error:?}"
    );
    assert_eq!(fx.count("mentions").await, 0);
    let mention = fx
        .create(
            "mentions",
            json!({"one": article.id(), "many": [article.id()]}),
        )
        .await;
    let error = fx
        .try_update("mentions", mention.id(), json!({"one": "missing00000000"}))
        .await
        .expect_err("updates are checked too");
    assert_eq!(
        validation_code(&error, "one").as_deref(),
        Some("validation_missing_rel_records"),
        "{error:?}"
    );
    // A target created earlier in the same write counts.
    let articles = fx.collection("articles");
    let data = crate::support::record_data(&articles, json!({"title": "b"}));
    let new_id = data["id"].clone();
    fx.write(vec![
        domain::WriteOp::Create {
            collection: articles,
            data,
            guard: None,
        },
        fx.create_op("mentions", json!({"one": new_id})),
    ])
    .await
    .expect("the target is in the same transaction");
}

pub async fn deletes_cascade_to_cascading_references(engine: &Engine) {
    let fx = open(engine).await;
    relation_fixture(&fx).await;
    let a1 = fx.create("articles", json!({"title": "one"})).await;
    let a2 = fx.create("articles", json!({"title": "two"})).await;
    let c1 = fx.create("comments", json!({"article": a1.id()})).await;
    let c2 = fx.create("comments", json!({"article": a1.id()})).await;
    let other = fx.create("comments", json!({"article": a2.id()})).await;
    let deleted = fx.try_delete("articles", a1.id()).await.expect("deleted");
    let WriteResult::Deleted { record, cascaded } = deleted else {
        panic!("a delete answers Deleted, got {deleted:?}");
    };
    assert_eq!(record.id(), a1.id());
    let comments_id = fx.collection("comments").id.clone();
    let mut cascaded = cascaded;
    cascaded.sort();
    let mut expected = vec![
        (comments_id.clone(), c1.id().to_owned()),
        (comments_id, c2.id().to_owned()),
    ];
    expected.sort();
    assert_eq!(cascaded, expected, "every record the cascade deleted");
    assert!(fx.get("comments", c1.id()).await.is_none());
    assert!(fx.get("comments", c2.id()).await.is_none());
    assert!(fx.get("comments", other.id()).await.is_some());
    assert!(fx.get("articles", a2.id()).await.is_some());
}

pub async fn a_required_reference_blocks_the_delete(engine: &Engine) {
    let fx = open(engine).await;
    relation_fixture(&fx).await;
    let a1 = fx.create("articles", json!({"title": "one"})).await;
    let a2 = fx.create("articles", json!({"title": "two"})).await;
    let comment = fx.create("comments", json!({"article": a1.id()})).await;
    let mention = fx
        .create("mentions", json!({"one": a1.id(), "many": [a1.id()]}))
        .await;
    let like = fx.create("likes", json!({"articles": [a1.id()]})).await;
    let error = fx
        .try_delete("articles", a1.id())
        .await
        .expect_err("the like would lose its only article");
    assert!(matches!(error, StoreError::RequiredReference), "{error:?}");
    assert!(fx.get("articles", a1.id()).await.is_some());
    assert!(
        fx.get("comments", comment.id()).await.is_some(),
        "the cascade was rolled back"
    );
    assert_eq!(
        fx.get("mentions", mention.id()).await.as_ref(),
        Some(&mention),
        "the cleared references were rolled back"
    );
    // With another article left the required field still holds, and the delete goes through.
    fx.update("likes", like.id(), json!({"articles": [a1.id(), a2.id()]}))
        .await;
    fx.try_delete("articles", a1.id()).await.expect("deleted");
    let like = fx.get("likes", like.id()).await.expect("the like stays");
    assert_eq!(like.data["articles"], json!([a2.id()]));
}

pub async fn deletes_clear_optional_references(engine: &Engine) {
    let fx = open(engine).await;
    relation_fixture(&fx).await;
    let a1 = fx.create("articles", json!({"title": "one"})).await;
    let a2 = fx.create("articles", json!({"title": "two"})).await;
    let mention = fx
        .create(
            "mentions",
            json!({"one": a1.id(), "many": [a2.id(), a1.id()]}),
        )
        .await;
    let untouched = fx
        .create("mentions", json!({"one": a2.id(), "many": [a2.id()]}))
        .await;
    fx.try_delete("articles", a1.id()).await.expect("deleted");
    let mention = fx.get("mentions", mention.id()).await.expect("kept");
    assert_eq!(
        mention.data["one"],
        json!(""),
        "a single reference is cleared"
    );
    assert_eq!(
        mention.data["many"],
        json!([a2.id()]),
        "a multiple reference loses only that id"
    );
    assert_eq!(
        fx.get("mentions", untouched.id()).await.as_ref(),
        Some(&untouched)
    );
}

pub async fn cascade_cycles_terminate(engine: &Engine) {
    let fx = open(engine).await;
    let mut nodes = base("nodes", vec![text("name")]);
    let nodes_id = nodes.id.clone();
    nodes
        .fields
        .push(relation("parent", &nodes_id, 1, false, true));
    fx.create_collection(nodes).await;
    let root = fx.create("nodes", json!({"name": "root"})).await;
    let child = fx
        .create("nodes", json!({"name": "child", "parent": root.id()}))
        .await;
    let grandchild = fx
        .create("nodes", json!({"name": "gc", "parent": child.id()}))
        .await;
    fx.create("nodes", json!({"name": "outsider"})).await;
    // Close the loop: root → grandchild → child → root.
    fx.update("nodes", root.id(), json!({"parent": grandchild.id()}))
        .await;
    fx.try_delete("nodes", child.id()).await.expect("deleted");
    assert_eq!(fx.texts("nodes", "name", "").await, ["outsider"]);
}

pub async fn deleting_an_auth_record_takes_its_bookkeeping_rows(engine: &Engine) {
    let fx = open(engine).await;
    let user = |email: &str| json!({"email": email, "tokenKey": domain::ids::random_alnum(50), "password": "x"});
    let ann = fx.create(USERS_NAME, user("ann@example.com")).await;
    let bob = fx.create(USERS_NAME, user("bob@example.com")).await;
    for owner in [&ann, &bob] {
        let refs = json!({"collectionRef": USERS_ID, "recordRef": owner.id()});
        let with = |extra: Value| {
            let mut values = refs.clone();
            if let (Value::Object(values), Value::Object(extra)) = (&mut values, extra) {
                values.extend(extra);
            }
            values
        };
        fx.create(
            "_externalAuths",
            with(json!({"provider": "gitlab", "providerId": owner.id()})),
        )
        .await;
        fx.create("_authOrigins", with(json!({"fingerprint": owner.id()})))
            .await;
        fx.create("_otps", with(json!({"password": "hash"}))).await;
        fx.create("_mfas", with(json!({"method": "password"})))
            .await;
    }
    assert_eq!(dependents_of(&fx, ann.id()).await, 4);
    fx.try_delete(USERS_NAME, ann.id()).await.expect("deleted");
    assert_eq!(
        dependents_of(&fx, ann.id()).await,
        0,
        "Ann's rows went with her"
    );
    assert_eq!(dependents_of(&fx, bob.id()).await, 4, "Bob's stay");
}

pub async fn truncate_deletes_every_record_with_cascades(engine: &Engine) {
    let fx = open(engine).await;
    relation_fixture(&fx).await;
    let a1 = fx.create("articles", json!({"title": "one"})).await;
    fx.create("articles", json!({"title": "two"})).await;
    fx.create("comments", json!({"article": a1.id()})).await;
    let mention = fx.create("mentions", json!({"many": [a1.id()]})).await;
    let like = fx.create("likes", json!({"articles": [a1.id()]})).await;
    let articles_id = fx.collection("articles").id.clone();
    let error = fx
        .store
        .truncate_collection(&articles_id)
        .await
        .expect_err("the like requires its article");
    assert!(matches!(error, StoreError::RequiredReference), "{error:?}");
    assert_eq!(fx.count("articles").await, 2, "nothing was deleted");
    assert_eq!(fx.count("comments").await, 1);
    fx.try_delete("likes", like.id())
        .await
        .expect("like deleted");
    fx.store
        .truncate_collection(&articles_id)
        .await
        .expect("truncated");
    assert_eq!(fx.count("articles").await, 0);
    assert_eq!(fx.count("comments").await, 0, "cascaded");
    assert_eq!(
        fx.get("mentions", mention.id()).await.expect("kept").data["many"],
        json!([]),
        "cleared"
    );
}

/// How many auth bookkeeping rows belong to the user `id`.
async fn dependents_of(fx: &Fixture, id: &str) -> usize {
    let filter = format!("collectionRef = '{USERS_ID}' && recordRef = '{id}'");
    let mut n = 0;
    for dependent in AUTH_RECORD_DEPENDENTS {
        let name = fx
            .store
            .schema()
            .get_by_id(dependent)
            .map(|c| c.name.clone())
            .expect("every engine bootstraps the auth bookkeeping collections");
        n += fx.list(&name, &filter, "").await.len();
    }
    n
}
