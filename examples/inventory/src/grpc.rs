//! The inventory's gRPC face: `inventory.v1.Inventory/GetStock`.
//!
//! ```proto
//! syntax = "proto3";
//! package inventory.v1;
//! service Inventory { rpc GetStock(StockRequest) returns (StockReply); }
//! message StockRequest { string sku = 1; }
//! message StockReply { string sku = 1; uint32 available = 2; }
//! ```
//!
//! The messages are written with prost's derive and the service with tonic's building
//! blocks (what `tonic-prost-build` would generate, trimmed to one unary method), so the
//! example builds without `protoc`. An unknown SKU answers `NOT_FOUND`.
//!
//! An error's `grpc-message` never echoes more than [`MAX_ECHOED_SKU`] characters of the
//! request: it travels in an HTTP/2 header, and a header list over the peer's limit
//! (16 KiB by default in h2) breaks the whole response, so the caller would get a
//! protocol error instead of `NOT_FOUND`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{Service, StdError, http};

use crate::Inventory;

/// The fully qualified service name.
pub const SERVICE_NAME: &str = "inventory.v1.Inventory";
/// The `GetStock` method path.
pub const GET_STOCK_PATH: &str = "/inventory.v1.Inventory/GetStock";

/// The most characters of a SKU an error message repeats (the rest is cut, marked `…`).
pub const MAX_ECHOED_SKU: usize = 64;

/// `sku` for an error message: at most [`MAX_ECHOED_SKU`] characters, `…` when cut.
fn echo(sku: &str) -> String {
    match sku.char_indices().nth(MAX_ECHOED_SKU) {
        Some((cut, _)) => format!("{:?}…", &sku[..cut]),
        None => format!("{sku:?}"),
    }
}

/// `GetStock` request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StockRequest {
    /// The SKU.
    #[prost(string, tag = "1")]
    pub sku: String,
}

/// `GetStock` reply.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StockReply {
    /// The SKU.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units available.
    #[prost(uint32, tag = "2")]
    pub available: u32,
}

/// The gRPC server for the inventory (add it to `tonic::transport::Server`).
#[derive(Clone)]
pub struct InventoryGrpcServer {
    inventory: Inventory,
}

impl InventoryGrpcServer {
    /// Serves `inventory` over gRPC.
    pub fn new(inventory: Inventory) -> Self {
        InventoryGrpcServer { inventory }
    }
}

impl tonic::server::NamedService for InventoryGrpcServer {
    const NAME: &'static str = SERVICE_NAME;
}

#[derive(Clone)]
struct GetStock(Inventory);

impl tonic::server::UnaryService<StockRequest> for GetStock {
    type Response = StockReply;
    type Future = std::future::Ready<Result<tonic::Response<StockReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<StockRequest>) -> Self::Future {
        let sku = request.into_inner().sku;
        std::future::ready(match self.0.available(&sku) {
            Some(available) => Ok(tonic::Response::new(StockReply { sku, available })),
            None => Err(tonic::Status::not_found(format!("unknown sku {}", echo(&sku)))),
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send + 'static>>;

impl<B> Service<http::Request<B>> for InventoryGrpcServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == GET_STOCK_PATH {
            let method = GetStock(self.inventory.clone());
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(method, req).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// Calls `GetStock` over any gRPC transport (a tonic `Channel`, or one wrapped in
/// telltale's client layers).
pub async fn get_stock<T>(transport: T, sku: &str) -> Result<StockReply, tonic::Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(transport);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("inventory not ready: {}", e.into())))?;
    let path = http::uri::PathAndQuery::from_static(GET_STOCK_PATH);
    let res = grpc
        .unary(
            tonic::Request::new(StockRequest { sku: sku.to_owned() }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    Ok(res.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_stock_over_a_real_grpc_connection() {
        let (channel, server) = serve_with_a().await;
        let reply = get_stock(channel.clone(), "a").await.unwrap();
        assert_eq!(
            reply,
            StockReply {
                sku: "a".into(),
                available: 7
            }
        );
        let err = get_stock(channel, "nope").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.message(), r#"unknown sku "nope""#);
        server.abort();
    }

    #[tokio::test]
    async fn an_unknown_long_sku_is_not_found_with_a_bounded_message() {
        let (channel, server) = serve_with_a().await;
        // Far beyond h2's 16 KiB header-list limit if it were echoed whole.
        let sku = "é".repeat(20_000);
        let err = get_stock(channel, &sku).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        assert!(
            err.message().chars().count() <= MAX_ECHOED_SKU + 20,
            "{}",
            err.message()
        );
        assert!(
            err.message().starts_with(r#"unknown sku "éé"#),
            "{}",
            err.message()
        );
        assert!(err.message().ends_with('…'), "{}", err.message());
        server.abort();
    }

    #[test]
    fn short_skus_are_echoed_whole() {
        assert_eq!(echo("sku-1"), r#""sku-1""#);
        assert_eq!(
            echo(&"x".repeat(MAX_ECHOED_SKU)),
            format!("{:?}", "x".repeat(MAX_ECHOED_SKU))
        );
        assert_eq!(
            echo(&"x".repeat(MAX_ECHOED_SKU + 1)),
            format!("{:?}…", "x".repeat(MAX_ECHOED_SKU))
        );
    }

    /// An inventory holding 7 of `a`, served over gRPC on a loopback port, and a channel
    /// to it.
    async fn serve_with_a() -> (tonic::transport::Channel, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(InventoryGrpcServer::new(Inventory::with_stock([("a", 7)])))
                .serve_with_incoming(tokio_stream_from(listener))
                .await;
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (channel, server)
    }

    fn tokio_stream_from(
        listener: tokio::net::TcpListener,
    ) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        futures_util::stream::unfold(listener, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        })
    }
}
