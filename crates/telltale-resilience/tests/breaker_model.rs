//! The circuit breaker's state machine, property-tested against a small reference model
//! (a deliberately naive re-statement of the rules), with a manual clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use telltale_resilience::breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitState, Permit};
use telltale_resilience::clock::ManualClock;

#[derive(Debug, Clone)]
enum Op {
    Start,
    Finish(usize, bool),
    Abandon(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Start),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, f)| Op::Finish(i, f)),
        1 => any::<usize>().prop_map(Op::Abandon),
        2 => (0u64..1500).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Config {
    consecutive: Option<u32>,
    threshold: f64,
    window: usize,
    min_calls: usize,
    half_open: u32,
    open_ms: u64,
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::option::of(1u32..5),
        prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
        1usize..8,
        1usize..10,
        1u32..4,
        1u64..1000,
    )
        .prop_map(
            |(consecutive, threshold, window, min_calls, half_open, open_ms)| Config {
                consecutive,
                threshold,
                window,
                min_calls,
                half_open,
                open_ms,
            },
        )
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum S {
    Closed,
    Open,
    HalfOpen,
}

struct Model {
    c: Config,
    now: u64,
    state: S,
    generation: u64,
    window: VecDeque<bool>,
    consecutive: u32,
    open_until: u64,
    half_open_since: u64,
    admitted: u32,
    trial_calls: u32,
    trial_failures: u32,
}

impl Model {
    fn new(c: Config) -> Self {
        Model {
            c,
            now: 0,
            state: S::Closed,
            generation: 0,
            window: VecDeque::new(),
            consecutive: 0,
            open_until: 0,
            half_open_since: 0,
            admitted: 0,
            trial_calls: 0,
            trial_failures: 0,
        }
    }

    fn go(&mut self, to: S) {
        self.state = to;
        self.generation += 1;
        self.admitted = 0;
        self.trial_calls = 0;
        self.trial_failures = 0;
        self.consecutive = 0;
        match to {
            S::Open => self.open_until = self.now + self.c.open_ms,
            S::Closed => self.window.clear(),
            S::HalfOpen => self.half_open_since = self.now,
        }
    }

    fn observed(&self) -> S {
        if self.state == S::Open && self.now >= self.open_until {
            S::HalfOpen
        } else {
            self.state
        }
    }

    /// `Some(generation)` when admitted.
    fn start(&mut self) -> Option<u64> {
        if self.state == S::Open && self.now >= self.open_until {
            self.go(S::HalfOpen);
        }
        match self.state {
            S::Closed => Some(self.generation),
            S::Open => None,
            S::HalfOpen if self.admitted < self.c.half_open => {
                self.admitted += 1;
                Some(self.generation)
            }
            // Trials out for a whole open wait count as failed.
            S::HalfOpen if self.now - self.half_open_since >= self.c.open_ms => {
                self.go(S::Open);
                None
            }
            S::HalfOpen => None,
        }
    }

    fn finish(&mut self, generation: u64, failed: bool) {
        if generation != self.generation {
            return;
        }
        match self.state {
            S::Closed => {
                self.window.push_back(failed);
                if self.window.len() > self.c.window {
                    self.window.pop_front();
                }
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                let trip = match self.c.consecutive {
                    Some(n) => self.consecutive >= n,
                    None => {
                        let calls = self.window.len();
                        let failures = self.window.iter().filter(|f| **f).count();
                        calls >= self.c.min_calls.min(self.c.window)
                            && failures as f64 / calls as f64 >= self.c.threshold
                    }
                };
                if trip {
                    self.go(S::Open);
                }
            }
            S::HalfOpen => {
                self.trial_calls += 1;
                self.trial_failures += u32::from(failed);
                if self.c.consecutive.is_some() && failed {
                    self.go(S::Open);
                } else if self.trial_calls >= self.c.half_open {
                    if f64::from(self.trial_failures) / f64::from(self.trial_calls) >= self.c.threshold {
                        self.go(S::Open);
                    } else {
                        self.go(S::Closed);
                    }
                }
            }
            S::Open => {}
        }
    }

    fn abandon(&mut self, generation: u64) {
        if generation == self.generation && self.state == S::HalfOpen {
            self.admitted = self.admitted.saturating_sub(1);
        }
    }
}

fn real(c: Config, clock: Arc<ManualClock>) -> CircuitBreakerHandle {
    let b = match c.consecutive {
        Some(n) => CircuitBreaker::consecutive_failures(n),
        None => CircuitBreaker::failure_rate(c.threshold),
    };
    b.sliding_window(c.window as u32)
        .min_calls(c.min_calls as u32)
        .half_open_calls(c.half_open)
        .open_for(Duration::from_millis(c.open_ms))
        .clock(clock)
        .build("model")
        .unwrap()
}

fn to_s(s: CircuitState) -> S {
    match s {
        CircuitState::Closed => S::Closed,
        CircuitState::Open => S::Open,
        CircuitState::HalfOpen => S::HalfOpen,
        other => panic!("unexpected state {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn breaker_matches_the_reference_model(c in config(), ops in prop::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new());
        let breaker = real(c, clock.clone());
        let mut model = Model::new(c);
        let mut in_flight: Vec<(Permit, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Start => {
                    let got = breaker.try_acquire();
                    let want = model.start();
                    prop_assert_eq!(got.is_ok(), want.is_some(), "admission differs");
                    if let (Ok(p), Some(g)) = (got, want) {
                        in_flight.push((p, g));
                    }
                }
                Op::Finish(i, failed) if !in_flight.is_empty() => {
                    let (p, g) = in_flight.remove(i % in_flight.len());
                    p.record(failed, Duration::from_millis(1));
                    model.finish(g, failed);
                }
                Op::Abandon(i) if !in_flight.is_empty() => {
                    let (p, g) = in_flight.remove(i % in_flight.len());
                    drop(p);
                    model.abandon(g);
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now += ms;
                }
                _ => {}
            }
            prop_assert_eq!(to_s(breaker.state()), model.observed());
        }
    }
}
