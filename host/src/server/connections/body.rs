//! A request body with a minimum rate: it must be in within the body
//! timeout plus one second per `min_bytes_per_sec` bytes received (the rule
//! of Apache's `mod_reqtimeout`), counted from when the handler first
//! reads it. A body sent at 1 KiB/s is cut after a few seconds, not read
//! for the 17 minutes a 1 MiB body would take.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How slowly a body may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    pub timeout: Duration,
    /// 0: the whole body within `timeout`.
    pub min_bytes_per_sec: u64,
}

impl BodyRate {
    /// When a body of which `received` bytes came, read since `started`,
    /// must have come further.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        let earned = match self.min_bytes_per_sec {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        started + self.timeout + earned
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body came slower than the host's minimum rate ({min_bytes_per_sec} bytes/s after {timeout:?})")]
pub struct TooSlow {
    timeout: Duration,
    min_bytes_per_sec: u64,
}

/// `inner`, failing with [`TooSlow`] once it falls behind `rate`; `slow` is
/// set then, so that the answer can be a 408 whatever the handler made of
/// the failed read.
pub(super) struct MinRate<B> {
    inner: B,
    rate: BodyRate,
    started: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    slow: Arc<AtomicBool>,
}

impl<B> MinRate<B> {
    pub(super) fn new(inner: B, rate: BodyRate, slow: Arc<AtomicBool>) -> MinRate<B> {
        MinRate {
            inner,
            rate,
            started: None,
            received: 0,
            timer: None,
            slow,
        }
    }

    fn too_slow(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.slow.store(true, Ordering::Release);
        Poll::Ready(Some(Err(TooSlow {
            timeout: self.rate.timeout,
            min_bytes_per_sec: self.rate.min_bytes_per_sec,
        }
        .into())))
    }
}

impl<B> Body for MinRate<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.rate.deadline(started, this.received);
                if Instant::now() >= deadline {
                    return this.too_slow();
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                timer.as_mut().reset(deadline);
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.too_slow(),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_received_earns_time_at_the_minimum_rate() {
        let rate = BodyRate {
            timeout: Duration::from_secs(10),
            min_bytes_per_sec: 1000,
        };
        let start = Instant::now();
        assert_eq!(rate.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(rate.deadline(start, 5000), start + Duration::from_secs(15));
        let whole = BodyRate {
            min_bytes_per_sec: 0,
            ..rate
        };
        assert_eq!(whole.deadline(start, 5000), start + Duration::from_secs(10));
    }
}
