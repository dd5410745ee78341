//! The lifespan helper, through the test client: state built at start-up reaches every scope,
//! a failing hook is `StartupFailed`, shut-down hooks run in reverse, a wrapped app with its
//! own lifespan starts and stops inside.

use std::sync::{Arc, Mutex};

use ragi_tools::lifespan::Lifespan;
use ragi_tools::prelude::*;
use ragi_tools::test::{TestClient, TestError};

#[derive(Clone)]
struct Greeting(&'static str);

struct Pool {
    url: String,
}

async fn hello(cx: HttpContext) -> Result<String, Error> {
    let g = cx.state_of::<Greeting>()?;
    let pool = cx.state_of::<Pool>()?;
    Ok(format!("{} via {}", g.0, pool.url))
}

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, what: &str) {
    log.lock().unwrap().push(what.to_owned());
}

#[tokio::test]
async fn state_built_at_startup_reaches_every_scope() {
    let log: Log = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let app = Lifespan::new(Router::new().get("/", hello))
        .state(Greeting("hello"))
        .state_with(|| async {
            Ok::<_, Error>(Pool {
                url: "db://test".into(),
            })
        })
        .on_shutdown(move |_| {
            let l = l1.clone();
            async move {
                note(&l, "first hook");
                Ok::<_, Error>(())
            }
        })
        .on_shutdown(move |state| {
            let l = l2.clone();
            async move {
                note(
                    &l,
                    &format!("second hook sees {}", state.get::<Pool>().unwrap().url),
                );
                Ok::<_, Error>(())
            }
        });
    let c = TestClient::new(app);
    // Before start-up the state is missing: a 500 (the log names the missing type).
    let r = c.get("/").header("accept", "text/plain").send().await;
    assert_eq!(r.status(), 500);

    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(true));
    let r = c.get("/").send().await;
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "hello via db://test")
    );
    assert!(
        c.state().get::<Greeting>().is_some(),
        "in the client's state too"
    );

    c.stop().await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["second hook sees db://test", "first hook"],
        "shut-down hooks run in reverse"
    );
}

#[tokio::test]
async fn a_failing_startup_hook_is_startup_failed() {
    let ran_after: Arc<Mutex<bool>> = Arc::default();
    let flag = ran_after.clone();
    let app = Lifespan::new(Router::new().get("/", hello))
        .on_startup(|_| async { Err::<(), _>("database unreachable") })
        .on_startup(move |_| {
            let f = flag.clone();
            async move {
                *f.lock().unwrap() = true;
                Ok::<_, Error>(())
            }
        });
    let c = TestClient::new(app);
    match c.start().await {
        Err(TestError::StartupFailed(m)) => assert_eq!(m, "database unreachable"),
        other => panic!("expected StartupFailed, got {other:?}"),
    }
    assert!(!*ran_after.lock().unwrap(), "later hooks do not run");

    // A state builder's error fails start-up the same way.
    let app = Lifespan::new(Router::new())
        .state_with(|| async { Err::<Pool, _>(Error::bad_request("no pool")) });
    let c = TestClient::new(app);
    assert!(matches!(c.start().await, Err(TestError::StartupFailed(m)) if m.contains("no pool")));
}

#[tokio::test]
async fn shutdown_failures_are_reported_after_every_hook_ran() {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = Lifespan::new(Router::new())
        .on_shutdown(move |_| {
            let l = l.clone();
            async move {
                note(&l, "still ran");
                Ok::<_, Error>(())
            }
        })
        .on_shutdown(|_| async { Err::<(), _>("flush failed") });
    let c = TestClient::new(app);
    c.start().await.unwrap();
    match c.stop().await {
        Err(TestError::ShutdownFailed(m)) => assert_eq!(m, "flush failed"),
        other => panic!("expected ShutdownFailed, got {other:?}"),
    }
    assert_eq!(*log.lock().unwrap(), ["still ran"]);
}

#[tokio::test]
async fn a_wrapped_app_with_its_own_lifespan_starts_and_stops_inside() {
    let log: Log = Arc::default();
    let (a, b, c1, d) = (log.clone(), log.clone(), log.clone(), log.clone());
    let inner = Lifespan::new(Router::new().get("/", hello))
        .on_startup(move |state| {
            let l = a.clone();
            async move {
                // The outer hooks ran first: their state is there.
                let g = state.get::<Greeting>().map(|g| g.0).unwrap_or("none");
                note(&l, &format!("inner up, greeting {g}"));
                state.insert(Pool {
                    url: "inner-pool".into(),
                });
                Ok::<_, Error>(())
            }
        })
        .on_shutdown(move |_| {
            let l = b.clone();
            async move {
                note(&l, "inner down");
                Ok::<_, Error>(())
            }
        });
    let app = Lifespan::new(inner)
        .on_startup(move |state| {
            let l = c1.clone();
            async move {
                state.insert(Greeting("outer"));
                note(&l, "outer up");
                Ok::<_, Error>(())
            }
        })
        .on_shutdown(move |_| {
            let l = d.clone();
            async move {
                note(&l, "outer down");
                Ok::<_, Error>(())
            }
        });
    let c = TestClient::new(app);
    c.start().await.unwrap();
    assert_eq!(c.get("/").send().await.text(), "outer via inner-pool");
    c.stop().await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer up",
            "inner up, greeting outer",
            "inner down",
            "outer down"
        ]
    );
}

#[tokio::test]
async fn an_inner_startup_failure_fails_the_whole_startup() {
    let inner = Lifespan::new(Router::new()).on_startup(|_| async { Err::<(), _>("inner broke") });
    let c = TestClient::new(Lifespan::new(inner));
    assert!(matches!(c.start().await, Err(TestError::StartupFailed(m)) if m == "inner broke"));
}
