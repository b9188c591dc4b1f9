//! The one reader of a whole upstream body: at most `cap` bytes (`http_body_util::Limited`), each
//! chunk within an idle timeout, never past a deadline. Answers, error bodies, model lists and
//! token counts are all read with it, so an endless or dribbling provider costs bounded memory
//! and time everywhere.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Body;

/// Why a body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It is larger than the cap.
    TooLarge,
    /// Nothing arrived for the idle timeout, or the deadline passed.
    Timeout,
    /// The connection broke off (the transport's words, which never hold a key).
    Cut(String),
}

/// Reads `body` whole: at most `cap` bytes, each chunk within `idle`, all before `deadline`.
pub async fn read_whole<B>(body: B, cap: usize, idle: Duration, deadline: Instant) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = http_body_util::Limited::new(body, cap);
    let mut out = BytesMut::new();
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(ReadError::TooLarge);
            }
            Ok(Some(Err(e))) => return Err(ReadError::Cut(e.to_string())),
        }
    }
}

/// The same for a `reqwest` answer (management calls: model lists, token counts).
pub async fn read_reqwest(
    response: reqwest::Response,
    cap: usize,
    idle: Duration,
    deadline: Instant,
) -> Result<Bytes, ReadError> {
    let body = http::Response::from(response).into_body();
    read_whole(body, cap, idle, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn a_body_is_read_whole_or_refused_by_its_cap_or_its_clock() {
        let far = Instant::now() + Duration::from_secs(60);
        let whole = read_whole(Full::new(Bytes::from_static(b"hello")), 10, Duration::from_secs(1), far).await;
        assert_eq!(whole, Ok(Bytes::from_static(b"hello")));
        let large = read_whole(Full::new(Bytes::from(vec![0u8; 11])), 10, Duration::from_secs(1), far).await;
        assert_eq!(large, Err(ReadError::TooLarge));
        // A body that never ends: the idle timeout.
        let endless = StreamBody::new(futures::stream::pending::<Result<hyper::body::Frame<Bytes>, std::io::Error>>());
        let slow = read_whole(endless, 10, Duration::from_millis(50), far).await;
        assert_eq!(slow, Err(ReadError::Timeout));
        let broken = StreamBody::new(futures::stream::iter(vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(b"he"))),
            Err(std::io::Error::other("reset")),
        ]));
        assert_eq!(read_whole(broken, 10, Duration::from_secs(1), far).await, Err(ReadError::Cut("reset".into())));
    }
}
