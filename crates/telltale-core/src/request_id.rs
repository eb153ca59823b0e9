//! The validated request id and the task-local "current request id".
//!
//! ```
//! use telltale_core::request_id::{is_allowed_byte, MAX_LEN};
//! assert!(is_allowed_byte(b'a') && !is_allowed_byte(b' '));
//! assert_eq!(MAX_LEN, 128);
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;

/// Longest request id accepted, in bytes (all accepted bytes are ASCII, so also characters).
pub const MAX_LEN: usize = 128;

/// A request id that has passed validation.
///
/// Accepted: 1 to 128 characters, each visible ASCII (`!` to `~`) except the double
/// quote `"`, the single quote `'` and the backslash `\`. That rules out spaces, control
/// characters (so no log injection through newlines), non-ASCII bytes and the characters
/// that need escaping in JSON, shell or CSV. A UUID, a ULID, a hex trace id and most
/// load-balancer ids (`Root=1-5f84c...`) pass.
///
/// Cloning is cheap: the value is held as a [`HeaderValue`], shared, not copied.
///
/// ```
/// use telltale_core::RequestId;
///
/// let id = RequestId::parse("0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10").unwrap();
/// assert_eq!(id.to_string(), "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10");
///
/// assert!(RequestId::parse("").is_err());
/// assert!(RequestId::parse("line\nbreak").is_err());
/// assert!(RequestId::parse(&"a".repeat(129)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

/// Why a candidate request id was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRequestId {
    /// The value was empty.
    Empty,
    /// The value was longer than [`MAX_LEN`] bytes.
    TooLong,
    /// The value held a byte outside the accepted set (at this offset).
    ForbiddenByte(usize),
}

impl InvalidRequestId {
    /// A short, stable reason label (`empty`, `too_long`, `forbidden_character`), for
    /// metric labels and log fields.
    pub const fn reason(&self) -> &'static str {
        match self {
            InvalidRequestId::Empty => "empty",
            InvalidRequestId::TooLong => "too_long",
            InvalidRequestId::ForbiddenByte(_) => "forbidden_character",
        }
    }
}

impl fmt::Display for InvalidRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidRequestId::Empty => f.write_str("request id is empty"),
            InvalidRequestId::TooLong => write!(f, "request id is longer than {MAX_LEN} characters"),
            InvalidRequestId::ForbiddenByte(at) => write!(
                f,
                "request id has a forbidden character at byte {at} (allowed: visible ASCII except quotes and backslash)"
            ),
        }
    }
}

impl std::error::Error for InvalidRequestId {}

/// Whether a byte may appear in a request id.
#[inline]
pub const fn is_allowed_byte(b: u8) -> bool {
    // Non-short-circuiting `&` so the check has no branches.
    (b >= 0x21) & (b <= 0x7e) & (b != b'"') & (b != b'\'') & (b != b'\\')
}

fn validate(bytes: &[u8]) -> Result<(), InvalidRequestId> {
    if bytes.is_empty() {
        return Err(InvalidRequestId::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(InvalidRequestId::TooLong);
    }
    if all_allowed(bytes) {
        return Ok(());
    }
    // The position is only searched for when reporting an error.
    let at = bytes.iter().position(|&b| !is_allowed_byte(b)).unwrap_or(0);
    Err(InvalidRequestId::ForbiddenByte(at))
}

/// Whether every byte is allowed, eight at a time (SWAR on `u64` words, branch-free):
/// about 16 instructions per word, 5 words for a 36-byte UUID (the last one overlaps
/// the one before instead of finishing byte by byte). LLVM's own vectorisation of the
/// byte-wise check turns the three excluded characters into shuffles and costs more.
#[inline]
fn all_allowed(bytes: &[u8]) -> bool {
    match bytes.last_chunk::<8>() {
        Some(&last) => {
            let (words, _) = bytes.as_chunks::<8>();
            words
                .iter()
                .fold(word_allowed(last), |ok, &w| ok & word_allowed(w))
        }
        // Shorter than a word: padded with an allowed byte.
        None => word_allowed(crate::ascii::last_word(bytes, b'a')),
    }
}

/// [`is_allowed_byte`] for all eight bytes of `word` at once.
#[inline(always)]
fn word_allowed(word: [u8; 8]) -> bool {
    crate::ascii::word_is_printable(word, 0x21, [b'"', b'\'', b'\\'])
}

impl RequestId {
    /// Validates and wraps a string.
    pub fn parse(s: &str) -> Result<Self, InvalidRequestId> {
        validate(s.as_bytes())?;
        // Every accepted byte is a valid header value byte.
        HeaderValue::from_str(s)
            .map(RequestId)
            .map_err(|_| InvalidRequestId::ForbiddenByte(0))
    }

    /// Validates an incoming header value, sharing its bytes.
    #[inline]
    pub fn from_header(value: &HeaderValue) -> Result<Self, InvalidRequestId> {
        validate(value.as_bytes())?;
        Ok(RequestId(value.clone()))
    }

    /// A request id from the 128 bits of a UUID, written the canonical way: lower-case
    /// hex, hyphenated, 36 characters. Built from hex digits and hyphens only, it needs
    /// no validation (this is the generators' fast path).
    ///
    /// ```
    /// use telltale_core::RequestId;
    ///
    /// let id = RequestId::from_uuid_bits(0x0190b7b4_6c1e_7a52_9d4e_3f1b2c8a9e10);
    /// assert_eq!(id.as_str(), "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10");
    /// ```
    pub fn from_uuid_bits(bits: u128) -> Self {
        // Eight hex digits at a time (SWAR, `ascii::hex8`).
        use crate::ascii::hex8;
        let words = [
            (bits >> 96) as u32,
            (bits >> 64) as u32,
            (bits >> 32) as u32,
            bits as u32,
        ];
        let [a, b, c, d] = words.map(hex8);
        let mut buf = [b'-'; 36];
        buf[..8].copy_from_slice(&a);
        buf[9..13].copy_from_slice(&b[..4]);
        buf[14..18].copy_from_slice(&b[4..]);
        buf[19..23].copy_from_slice(&c[..4]);
        buf[24..28].copy_from_slice(&c[4..]);
        buf[28..].copy_from_slice(&d);
        // `Bytes::from_owner` moves the 36 bytes into one reference-counted allocation:
        // the request extensions, the task-local and the response header then share it.
        // Hex digits and hyphens are valid header bytes, so this cannot fail; the
        // fallback keeps the request path panic-free all the same.
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
            .map(RequestId)
            .unwrap_or_else(|_| RequestId(HeaderValue::from_static("00000000-0000-0000-0000-000000000000")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Validation guarantees visible ASCII, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, ready to put on a request or response.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id of the request whose task is running now, if any (see [`with_request_id`]).
    pub fn current() -> Option<RequestId> {
        current_request_id()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl std::str::FromStr for RequestId {
    type Err = InvalidRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestId::parse(s)
    }
}

impl TryFrom<&HeaderValue> for RequestId {
    type Error = InvalidRequestId;
    fn try_from(value: &HeaderValue) -> Result<Self, Self::Error> {
        RequestId::from_header(value)
    }
}

impl From<RequestId> for HeaderValue {
    fn from(id: RequestId) -> Self {
        id.0
    }
}

// === the current request id ===
//
// A thread-local swapped in around each poll of a [`WithRequestId`], the way tokio's
// `task_local!` works. Written here rather than using `task_local!` because tokio's
// `TaskLocalFuture` cost about 180 instructions per request on the request-id layer's
// path (callgrind): a `RefCell` borrow per swap, the output moved through
// `Result<Option<_>>`, and a second enter/exit when the completed future is dropped.
// Here a `const`-initialised `Cell` has no borrow flag, the poll inlines into the
// caller's, and the inner future is dropped in scope as soon as it completes. It also
// keeps tokio out of telltale-core. Semantics are tokio's: the id is visible to code
// polled inside the future and to the inner future's destructor, not to spawned tasks.

thread_local! {
    static CURRENT: Cell<Option<RequestId>> = const { Cell::new(None) };
}

/// While alive, `slot`'s id is the thread's current one and `slot` holds the previous
/// current id; dropping it (also on unwind) swaps them back, so scopes nest.
///
/// Both directions are one `Cell::swap`: the 40-byte `Option<RequestId>` is copied in
/// equal-width chunks each way. Moving it with `take`/`replace` instead wrote the
/// `HeaderValue`'s trailing `bool` with a byte store that a wider load read back at once
/// (a store-forwarding stall: a third of the samples in the request-id layer's `poll`).
struct Entered<'a> {
    slot: &'a Cell<Option<RequestId>>,
}

impl<'a> Entered<'a> {
    #[inline]
    fn enter(slot: &'a mut Option<RequestId>) -> Option<Self> {
        let slot = Cell::from_mut(slot);
        // `try_with` fails only while the thread's locals are being destroyed: the future
        // then runs without a current id rather than panicking.
        CURRENT.try_with(|cur| cur.swap(slot)).ok()?;
        Some(Entered { slot })
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        // Cannot fail: `enter` succeeded on this thread and the scope is still on its
        // stack, so its locals are not being destroyed yet.
        let _ = CURRENT.try_with(|cur| cur.swap(self.slot));
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`with_request_id`]: polls `F` with the id as the current
    /// request id.
    pub struct WithRequestId<F> {
        id: Option<RequestId>,
        // `None` once completed or dropped: `F`'s destructor runs in scope.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for WithRequestId<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if std::mem::needs_drop::<F>() && this.future.is_some() {
                let _entered = Entered::enter(this.id);
                this.future.set(None);
            }
        }
    }
}

impl<F> WithRequestId<F> {
    /// The id this future runs with (`None` once taken with [`take_id`](Self::take_id)).
    pub fn id(&self) -> Option<&RequestId> {
        self.id.as_ref()
    }

    /// Takes the id out, e.g. to put it on the response once `F` has completed; `F` is
    /// polled without a current id afterwards.
    pub fn take_id(self: Pin<&mut Self>) -> Option<RequestId> {
        self.project().id.take()
    }
}

impl<F: Future> Future for WithRequestId<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _entered = Entered::enter(this.id);
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            // Polled again after completing: like `futures::future::Fuse`, stay pending
            // rather than poll a finished future.
            return Poll::Pending;
        };
        let out = future.poll(cx);
        if out.is_ready() {
            // Dropped now, while in scope, so our own destructor has nothing left to do.
            this.future.set(None);
        }
        out
    }
}

impl<F> fmt::Debug for WithRequestId<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithRequestId")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Runs `fut` with `id` as the current request id: [`current_request_id`] returns it
/// from any code polled inside `fut`, across `.await`s, without threading it by hand.
///
/// The server request-id layer does this for every request. A task spawned from a
/// handler runs outside that scope: wrap it with `with_request_id` to carry the id.
///
/// ```
/// use telltale_core::{current_request_id, with_request_id, RequestId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let id = RequestId::parse("abc").unwrap();
/// let seen = with_request_id(id.clone(), async { current_request_id() }).await;
/// assert_eq!(seen, Some(id));
/// assert_eq!(current_request_id(), None);
/// # }
/// ```
pub fn with_request_id<F: Future>(id: RequestId, fut: F) -> WithRequestId<F> {
    WithRequestId {
        id: Some(id),
        future: Some(fut),
    }
}

/// The current request id (see [`with_request_id`]), or `None` outside a request.
pub fn current_request_id() -> Option<RequestId> {
    CURRENT
        .try_with(|cur| {
            let id = cur.take();
            let copy = id.clone();
            cur.set(id);
            copy
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_bits_are_written_lower_case_and_hyphenated() {
        let mut x: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        for _ in 0..1000 {
            let hex = format!("{x:032x}");
            let want = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
            let id = RequestId::from_uuid_bits(x);
            assert_eq!(id.as_str(), want);
            assert_eq!(RequestId::parse(&want).unwrap(), id);
            // Cheap pseudo-random walk over the whole range (xorshift on both halves).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        assert_eq!(
            RequestId::from_uuid_bits(0).as_str(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            RequestId::from_uuid_bits(u128::MAX).as_str(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
    }

    #[test]
    fn accepts_visible_ascii_up_to_128() {
        assert!(RequestId::parse("a").is_ok());
        assert!(RequestId::parse(&"x".repeat(128)).is_ok());
        assert!(RequestId::parse("Root=1-5f84c7a9-abc;Parent=xyz").is_ok());
        assert!(RequestId::parse("!#$%&()*+,-./:;<=>?@[]^_`{|}~").is_ok());
    }

    #[test]
    fn rejects_empty_long_space_quotes_backslash_control_and_non_ascii() {
        assert_eq!(RequestId::parse(""), Err(InvalidRequestId::Empty));
        assert_eq!(RequestId::parse(&"x".repeat(129)), Err(InvalidRequestId::TooLong));
        for (bad, at) in [
            ("a b", 1),
            ("a\"b", 1),
            ("'", 0),
            ("a\\b", 1),
            ("ab\n", 2),
            ("\t", 0),
            ("é", 0),
            ("a\u{7f}", 1),
        ] {
            assert_eq!(
                RequestId::parse(bad),
                Err(InvalidRequestId::ForbiddenByte(at)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_byte_value_is_judged_alike_at_every_length_and_position() {
        for len in 1..=MAX_LEN {
            let mut id = vec![b'a'; len];
            assert_eq!(validate(&id), Ok(()));
            for at in 0..len {
                for b in 0..=u8::MAX {
                    id[at] = b;
                    let want = if is_allowed_byte(b) {
                        Ok(())
                    } else {
                        Err(InvalidRequestId::ForbiddenByte(at))
                    };
                    assert_eq!(validate(&id), want, "len {len}, byte {b:#x} at {at}");
                }
                id[at] = b'a';
            }
        }
    }

    #[test]
    fn header_values_with_obs_text_are_rejected() {
        let v = HeaderValue::from_bytes(b"abc\xff").unwrap();
        assert_eq!(
            RequestId::from_header(&v),
            Err(InvalidRequestId::ForbiddenByte(3))
        );
    }

    #[tokio::test]
    async fn current_id_is_scoped_to_the_future() {
        let id = RequestId::parse("scoped").unwrap();
        assert_eq!(current_request_id(), None);
        let inner = with_request_id(id.clone(), async {
            tokio::task::yield_now().await;
            current_request_id()
        })
        .await;
        assert_eq!(inner, Some(id));
        assert_eq!(current_request_id(), None);
    }

    #[tokio::test]
    async fn scopes_nest_and_restore() {
        let outer = RequestId::parse("outer").unwrap();
        let inner = RequestId::parse("inner").unwrap();
        let seen = with_request_id(outer.clone(), async {
            let before = current_request_id();
            let nested = with_request_id(inner.clone(), async {
                tokio::task::yield_now().await;
                current_request_id()
            })
            .await;
            (before, nested, current_request_id())
        })
        .await;
        assert_eq!(seen, (Some(outer.clone()), Some(inner), Some(outer)));
        assert_eq!(current_request_id(), None);
    }

    #[tokio::test]
    async fn spawned_tasks_do_not_inherit_the_id() {
        let id = RequestId::parse("parent").unwrap();
        let in_child = with_request_id(id, async {
            tokio::spawn(async { current_request_id() }).await.unwrap()
        })
        .await;
        assert_eq!(in_child, None);
    }

    #[test]
    fn a_panicking_future_leaves_no_current_id_behind() {
        let id = RequestId::parse("boom").unwrap();
        let mut fut = std::pin::pin!(with_request_id(id, async { panic!("handler panicked") }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = fut.as_mut().poll(&mut cx);
        }));
        assert!(caught.is_err());
        assert_eq!(current_request_id(), None);
        // The guard handed the id back to the future on unwind.
        assert_eq!(fut.id().map(RequestId::as_str), Some("boom"));
    }

    #[test]
    fn the_inner_future_is_dropped_in_scope_and_the_id_can_be_taken() {
        struct SeesIdOnDrop(std::rc::Rc<Cell<Option<RequestId>>>);
        impl Drop for SeesIdOnDrop {
            fn drop(&mut self) {
                self.0.set(current_request_id());
            }
        }
        let seen = std::rc::Rc::new(Cell::new(None));
        let guard = SeesIdOnDrop(seen.clone());
        let fut = with_request_id(RequestId::parse("dropped").unwrap(), async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        let mut fut = Box::pin(fut);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(current_request_id(), None);
        drop(fut);
        assert_eq!(seen.take().map(|id| id.to_string()).as_deref(), Some("dropped"));
        assert_eq!(current_request_id(), None);

        let mut fut = std::pin::pin!(with_request_id(RequestId::parse("t").unwrap(), async {
            current_request_id()
        }));
        assert_eq!(
            fut.as_mut().take_id().map(|id| id.to_string()).as_deref(),
            Some("t")
        );
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(None));
        // Polled again after completing: pending, not a panic from the finished future.
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    }
}
