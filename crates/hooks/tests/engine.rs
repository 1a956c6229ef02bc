//! The engine against real hook files: loading, chains, errors, bounds.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hooks::{Engine, EngineConfig, HookError, Host, HostError, HostResult};
use serde_json::{Value, json};

/// A host that records the operations it is asked for and answers from a closure.
struct TestHost {
    calls: Mutex<Vec<(String, Value)>>,
    answer: Box<dyn Fn(&str, &Value) -> HostResult + Send + Sync>,
}

impl Host for TestHost {
    fn call(&self, op: &str, args: Value) -> HostResult {
        self.calls
            .lock()
            .unwrap()
            .push((op.to_owned(), args.clone()));
        (self.answer)(op, &args)
    }
}

fn host(answer: impl Fn(&str, &Value) -> HostResult + Send + Sync + 'static) -> Arc<TestHost> {
    Arc::new(TestHost {
        calls: Mutex::new(Vec::new()),
        answer: Box::new(answer),
    })
}

async fn engine_with(files: &[(&str, &str)], config: EngineConfig) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let engine = Engine::start(EngineConfig {
        hooks_dir: Some(dir.path().to_path_buf()),
        ..config
    })
    .await
    .unwrap();
    (engine, dir)
}

fn request() -> Value {
    json!({"method":"GET","host":"x","path":"/t","rawQuery":"a=1&a=2","headers":{"x-custom-header":["hv"]},
           "pathValues":{"name":"john doe"},"body":"","auth":null,"remoteIP":"127.0.0.1","realIP":"127.0.0.1"})
}

#[tokio::test]
async fn routes_register_and_run_with_their_sources() {
    let (engine, _dir) = engine_with(
        &[(
            "a.pb.js",
            r#"const TOP = "v";
routerAdd("get", "/p/{name}", (e) => e.json(200, {name: e.request.pathValue("name"), top: typeof TOP, q: e.requestInfo().query}));
routerAdd("GET", "/bad", (e) => { throw new BadRequestError("bad thing") });
routerAdd("GET", "/plain", (e) => { throw new Error("x") });
"#,
        )],
        EngineConfig::default(),
    )
    .await;
    assert!(engine.failures.is_empty(), "{:?}", engine.failures);
    let routes = &engine.registry.routes;
    assert_eq!(routes.len(), 3);
    assert_eq!(routes[0].method, "GET");
    let h = host(|_, _| Ok(Value::Null));
    let answer = engine
        .call(
            "route",
            json!({"links":[routes[0].handler], "request": request()}),
            h.clone(),
        )
        .await
        .unwrap();
    let response = &answer["response"];
    assert_eq!(response["status"], 200);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"name":"john doe","top":"undefined","q":{"a":"1"}})
    );

    match engine
        .call(
            "route",
            json!({"links":[routes[1].handler], "request": request()}),
            h.clone(),
        )
        .await
    {
        Err(HookError::Thrown { api: Some(api), .. }) => {
            assert_eq!((api.status, api.message.as_str()), (400, "Bad thing."));
        }
        other => panic!("unexpected {other:?}"),
    }
    match engine
        .call(
            "route",
            json!({"links":[routes[2].handler], "request": request()}),
            h,
        )
        .await
    {
        Err(HookError::Thrown { api: None, text }) => {
            assert!(text.contains("Error: x"), "{text}");
            assert!(text.contains("a.pb.js:4"), "error position: {text}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn load_failures_keep_what_came_before() {
    let (engine, _dir) = engine_with(
        &[
            ("1.pb.js", "routerAdd('GET','/ok',(e)=>e.string(200,'ok'));\nnonExistent();\nrouterAdd('GET','/lost',(e)=>{});"),
            ("2.pb.js", "this is not valid javascript ("),
            ("3.pb.js", "onRecordCreate((e)=>e.next(), 'posts')"),
            ("notes.txt", "ignored"),
        ],
        EngineConfig::default(),
    )
    .await;
    assert_eq!(engine.failures.len(), 2, "{:?}", engine.failures);
    assert!(engine.failures[0].error.contains("ReferenceError"));
    assert!(engine.failures[1].error.contains("SyntaxError"));
    assert_eq!(engine.registry.routes.len(), 1);
    assert!(engine.registry.applies("onRecordCreate", "posts", "x"));
    assert!(!engine.registry.applies("onRecordCreate", "other", "x"));
}

#[tokio::test]
async fn host_errors_become_go_errors_and_api_errors() {
    let (engine, _dir) = engine_with(
        &[(
            "a.pb.js",
            r#"routerAdd("GET", "/x", (e) => {
  let caught = "";
  try { $app.findRecordById("posts", "nope") } catch (err) { caught = err.name + ": " + err.message }
  e.json(200, {caught});
});
routerAdd("GET", "/y", (e) => { $app.findRecordById("posts", "nope") });"#,
        )],
        EngineConfig::default(),
    )
    .await;
    let h = host(|op, _| match op {
        "findRecordById" => Err(HostError::no_rows()),
        _ => Ok(Value::Null),
    });
    let routes = &engine.registry.routes;
    let answer = engine
        .call(
            "route",
            json!({"links":[routes[0].handler], "request": request()}),
            h.clone(),
        )
        .await
        .unwrap();
    assert!(
        answer["response"]["body"]
            .as_str()
            .unwrap()
            .contains("GoError: sql: no rows in result set")
    );
    match engine
        .call(
            "route",
            json!({"links":[routes[1].handler], "request": request()}),
            h,
        )
        .await
    {
        Err(HookError::Thrown { api: Some(api), .. }) => assert_eq!(api.status, 404),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn runaway_handlers_are_interrupted_and_the_pool_recovers() {
    let (engine, _dir) = engine_with(
        &[(
            "a.pb.js",
            r#"routerAdd("GET", "/loop", (e) => { while (true) {} });
routerAdd("GET", "/alloc", (e) => { const a = []; while (true) a.push("x".repeat(1000)) });
routerAdd("GET", "/ok", (e) => e.string(200, "fine"));"#,
        )],
        EngineConfig {
            timeout: Duration::from_millis(500),
            memory_limit: 16 * 1024 * 1024,
            pool_size: 1,
            ..EngineConfig::default()
        },
    )
    .await;
    let routes = engine.registry.routes.clone();
    let h = host(|_, _| Ok(Value::Null));
    let started = std::time::Instant::now();
    let looped = engine
        .call(
            "route",
            json!({"links":[routes[0].handler], "request": request()}),
            h.clone(),
        )
        .await;
    assert!(matches!(looped, Err(HookError::TimedOut)), "{looped:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let alloc = engine
        .call(
            "route",
            json!({"links":[routes[1].handler], "request": request()}),
            h.clone(),
        )
        .await;
    assert!(matches!(alloc, Err(HookError::OutOfMemory)), "{alloc:?}");
    let ok = engine
        .call(
            "route",
            json!({"links":[routes[2].handler], "request": request()}),
            h,
        )
        .await
        .unwrap();
    assert_eq!(ok["response"]["body"], "fine");
}

#[tokio::test]
async fn security_helpers_match_known_answers() {
    let (engine, _dir) = engine_with(
        &[(
            "a.pb.js",
            r#"routerAdd("GET", "/s", (e) => {
  const t = $security.createJWT({id: "abc", n: 1}, "secret-key", 3600);
  e.json(200, {
    sha: $security.sha256("hello"), hs: $security.hs256("hello", "key"), md5: $security.md5("hello"),
    eq: $security.equal("a", "a"), ne: $security.equal("a", "b"), len: $security.randomString(10).length,
    claims: $security.parseJWT(t, "secret-key").id,
    bad: (() => { try { $security.parseJWT(t, "other"); return "" } catch (err) { return err.message } })(),
    str: toString({b: 2, a: 1}), bytes: toString(toBytes("hi")),
  });
});"#,
        )],
        EngineConfig::default(),
    )
    .await;
    let h = host(|_, _| Ok(Value::Null));
    let answer = engine
        .call(
            "route",
            json!({"links":[engine.registry.routes[0].handler], "request": request()}),
            h,
        )
        .await
        .unwrap();
    let body: Value = serde_json::from_str(answer["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["sha"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        body["hs"],
        "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
    );
    assert_eq!(body["md5"], "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(body["eq"], true);
    assert_eq!(body["ne"], false);
    assert_eq!(body["len"], 10);
    assert_eq!(body["claims"], "abc");
    assert_eq!(
        body["bad"],
        "token signature is invalid: signature is invalid"
    );
    assert_eq!(body["str"], r#"{"a":1,"b":2}"#);
    assert_eq!(body["bytes"], "hi");
}
