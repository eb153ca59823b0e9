//! Heap allocations per request: bare axum vs `server_layer()`, counted with dhat.
//!
//! `cargo bench -p telltale --bench allocations`

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[path = "support/mod.rs"]
mod support;

const N: u64 = 20_000;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let telemetry = rt.block_on(async { support::telemetry() });
    let bare = support::bare().with_state(());
    let full = support::bare().layer(telemetry.server_layer()).with_state(());
    let per_request = |app: &axum::Router, flags: &str| {
        rt.block_on(async {
            for _ in 0..1_000 {
                support::call(app, support::request(flags)).await; // warm caches and handles
            }
            let before = dhat::HeapStats::get().total_blocks;
            for _ in 0..N {
                support::call(app, support::request(flags)).await;
            }
            (dhat::HeapStats::get().total_blocks - before) as f64 / N as f64
        })
    };
    let bare_allocs = per_request(&bare, "00");
    let not_sampled = per_request(&full, "00");
    let sampled = per_request(&full, "01");
    println!("allocations/request: bare {bare_allocs:.1}");
    println!(
        "allocations/request: server_layer, not sampled {not_sampled:.1} (+{:.1} over bare)",
        not_sampled - bare_allocs
    );
    println!(
        "allocations/request: server_layer, sampled {sampled:.1} (+{:.1} over bare)",
        sampled - bare_allocs
    );
    drop(telemetry);
}
