//! The gRPC Health Checking service over a real TCP connection (feature `tonic`): from
//! the start of the drain, `Check` answers NOT_SERVING and every open `Watch` is sent
//! NOT_SERVING, however busy readiness is setting the status at that moment.
#![cfg(feature = "tonic")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use telltale_health::{CheckError, Health, checks};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: [&str; 2] = ["", "orders.v1.Orders"];
const DEADLINE: Duration = Duration::from_secs(10);

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let status = client.check(request(service)).await.unwrap().into_inner().status;
    ServingStatus::try_from(status).unwrap()
}

/// Waits (bounded) until the readiness check has run `n` times in all.
async fn runs_reach(runs: &AtomicUsize, n: usize) {
    tokio::time::timeout(DEADLINE, async {
        while runs.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the check never ran {n} times"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_amid_flapping_readiness_leaves_grpc_not_serving_for_good() {
    // A check that passes and fails in turn, run every millisecond: readiness keeps
    // setting the gRPC status back and forth as the drain begins.
    let runs = Arc::new(AtomicUsize::new(0));
    let (reporter, grpc_service) = tonic_health::server::health_reporter();
    let health = {
        let runs = runs.clone();
        Health::builder()
            .check(
                "flappy",
                checks::from_fn(move || {
                    let n = runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n.is_multiple_of(2) {
                            Ok(())
                        } else {
                            Err(CheckError::msg("flap"))
                        }
                    }
                }),
            )
            .refresh_every(Duration::from_millis(1))
            .grpc_reporter(reporter, ["orders.v1.Orders"])
            .build()
            .unwrap()
    };

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(grpc_service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    runs_reach(&runs, 2).await; // both services exist by now
    let mut watches = Vec::new();
    for service in SERVICES {
        watches.push(client.watch(request(service)).await.unwrap().into_inner());
    }
    runs_reach(&runs, runs.load(Ordering::SeqCst) + 10).await;

    assert!(health.drain().await);
    for service in SERVICES {
        assert_eq!(
            check(&mut client, service).await,
            ServingStatus::NotServing,
            "{service:?} right after drain()"
        );
    }
    // The runs go on; none may set it back.
    runs_reach(&runs, runs.load(Ordering::SeqCst) + 20).await;
    for service in SERVICES {
        assert_eq!(
            check(&mut client, service).await,
            ServingStatus::NotServing,
            "{service:?} 20 runs into the drain"
        );
    }
    for (service, watch) in SERVICES.iter().zip(&mut watches) {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let sent = watch.message().await.unwrap().expect("watch stream open");
                if sent.status == ServingStatus::NotServing as i32 {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{service:?}: the watch was never sent NOT_SERVING"));
    }

    drop((watches, client));
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the gRPC server stops")
        .unwrap()
        .unwrap();
}
