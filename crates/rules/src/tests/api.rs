//! The public entry points.

#[test]
fn compiled_objects_are_shareable() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<crate::Compiled>();
    shareable::<crate::CompiledSort>();
    shareable::<crate::Rule>();
    shareable::<crate::CollectionRules>();
}

#[test]
fn compile_once_emit_per_request() {
    use domain::{Dialect, SqlValue};

    let f = super::support::Fixture::new();
    let rt = f.collection("rt");
    let rule = crate::Compiled::compile(
        &f.schema,
        &rt,
        "owner = @request.auth.id && @request.auth.team.name = 'Red'",
        crate::Mode::Rule,
    )
    .expect("compiles");
    let alice = rule.to_sql(Dialect::Sqlite, &f.ctx("alice"));
    let bob = rule.to_sql(Dialect::Sqlite, &f.ctx("bob"));
    assert_eq!(alice.sql, bob.sql);
    assert_eq!(
        alice.params,
        vec![
            SqlValue::Text("T1".into()),
            SqlValue::Text("alice".into()),
            SqlValue::Text("Red".into())
        ]
    );
    assert_eq!(bob.params[0], SqlValue::Text("T2".into()));
    assert_eq!(f.run(&rule, &f.ctx("alice"), "rt"), vec!["r1"]);
    assert_eq!(f.run(&rule, &f.ctx("bob"), "rt"), Vec::<String>::new());
    assert!(!rule.is_row_local());
}
