//! The HTTP ceiling: an axum server that answers `/api/health` with PocketBase's health body and
//! does nothing else. Measured with the same load generator, connections and CPU pinning as the
//! real servers, it shows the most any axum/tokio server can serve on this machine.

use axum::{Router, routing::get};

const BODY: &str = r#"{"message":"API is healthy.","code":200,"data":{}}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18180".to_string());
    let app = Router::new().route(
        "/api/health",
        get(|| async { ([("content-type", "application/json")], BODY) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
