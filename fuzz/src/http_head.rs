//! Property of the HTTP request reader (`http::request::parse_head` and
//! `http::body::ChunkedDecoder`): how the bytes arrive must not matter.
//!
//! The connection loop parses everything received so far after every read
//! (through `HeadProgress`, which skips parses that cannot change the
//! answer) and stops at the first answer that is not `Partial`; it
//! feeds a chunked body to the decoder in whatever pieces the reads return.
//! So the same bytes, delivered whole, split at one point, or one byte at a
//! time, must give the same answer: the same head (same fields, same
//! length) or the same error, and the same decoded body, consumed length
//! and error. Nothing may panic on any input.
//!
//! The first input byte picks the mode (a request, or a bare chunked body),
//! the next two the split point, the next one the body limit; the rest is
//! the bytes on the wire.

use sluice::http::body::{ChunkError, ChunkedDecoder};
use sluice::http::request::{BodyFraming, HeadError, HeadProgress, HeadStatus, parse_head};
use sluice::limits::HEAD_BYTES_MAX;

use super::Input;

/// Inputs up to this long are also fed one byte at a time. Every step
/// re-parses the whole buffer (as the connection does), so this costs
/// quadratic time; the bound keeps one run under a few milliseconds while
/// still covering every limit through the whole-versus-split comparison.
const BYTEWISE_BYTES_MAX: usize = 2048;

/// Body limits to decode against: none at all, tiny, and the default.
const BODY_LIMITS: [usize; 4] = [0, 1, 64, 260_096];

/// Runs the property on one fuzz input.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let split_seed = usize::from(input.u16());
    let body_max = BODY_LIMITS[input.choose(BODY_LIMITS.len())];
    let wire = input.rest();
    if mode % 2 == 0 {
        check_request(wire, split_seed, body_max);
    } else {
        check_chunked(wire, split_seed, body_max);
    }
}

/// The head, then (for a chunked request) the body after it.
fn check_request(wire: &[u8], split_seed: usize, body_max: usize) {
    let whole = parse_growing(wire, &[wire.len()]);
    let split = split_seed % (wire.len() + 1);
    assert_same_head(
        &parse_growing(wire, &[split, wire.len()]),
        &whole,
        "split at one point",
    );
    if wire.len() <= BYTEWISE_BYTES_MAX {
        let every: Vec<usize> = (0..=wire.len()).collect();
        assert_same_head(&parse_growing(wire, &every), &whole, "byte by byte");
    }
    match whole {
        Ok(HeadStatus::Complete { head, head_len }) => {
            assert!(head_len <= wire.len() && head_len <= HEAD_BYTES_MAX);
            assert!(
                wire[..head_len].ends_with(b"\r\n\r\n"),
                "a complete head ends with an empty line"
            );
            if head.framing == BodyFraming::Chunked {
                check_chunked(&wire[head_len..], split_seed, body_max);
            }
        }
        Ok(HeadStatus::Partial) => {
            assert!(
                wire.len() <= HEAD_BYTES_MAX,
                "a partial head stays within the limit"
            );
        }
        Err(_) => {}
    }
}

/// Asserts that a head read in pieces is the head read whole: the same
/// head, or the same error. (Fuzzing once found `=\x9e\n` refused as
/// `bare-line-ending` whole but `malformed-request-line` from its first
/// byte; `parse_head` now decides a refusal by the shortest refused prefix.)
fn assert_same_head(
    pieces: &Result<HeadStatus<'_>, HeadError>,
    whole: &Result<HeadStatus<'_>, HeadError>,
    how: &str,
) {
    assert_eq!(pieces, whole, "{how} changes the head");
}

/// What the connection loop sees when the buffer grows to each of `ends`
/// in turn: the first answer that is not `Partial`, else `Partial`. The
/// loop parses through a [`HeadProgress`], which skips parses that cannot
/// change the answer; after every step its answer must be exactly what a
/// full parse of the bytes so far gives, so skipping never delays one.
fn parse_growing<'b>(wire: &'b [u8], ends: &[usize]) -> Result<HeadStatus<'b>, HeadError> {
    let mut progress = HeadProgress::default();
    for &end in ends {
        let mut headers = sluice::http::request::header_slots();
        let gated = progress.parse(&wire[..end], &mut headers);
        let mut headers = sluice::http::request::header_slots();
        assert_eq!(
            gated,
            parse_head(&wire[..end], &mut headers),
            "a skipped parse would have answered after {end} bytes"
        );
        match gated {
            Ok(HeadStatus::Partial) => {}
            answer => return answer,
        }
    }
    Ok(HeadStatus::Partial)
}

/// What decoding a chunked body answers: the decoded bytes, how much of the
/// input the body took, and whether it ended; or the error.
type Decoded = Result<(Vec<u8>, usize, bool), ChunkError>;

/// A chunked body decoded whole, in two pieces, and byte by byte.
fn check_chunked(wire: &[u8], split_seed: usize, body_max: usize) {
    let whole = decode_pieces(&[wire], body_max);
    let split = split_seed % (wire.len() + 1);
    let (first, second) = wire.split_at(split);
    assert_eq!(
        decode_pieces(&[first, second], body_max),
        whole,
        "split at {split} changes the body"
    );
    if wire.len() <= BYTEWISE_BYTES_MAX {
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            decode_pieces(&bytes, body_max),
            whole,
            "byte by byte changes the body"
        );
    }
    if let Ok((body, consumed, _)) = &whole {
        assert!(body.len() <= body_max, "the body limit holds");
        assert!(*consumed <= wire.len());
    }
}

/// Feeds `pieces` to one decoder in order, stopping once the body ends, as
/// the connection does (bytes after the body belong to the next request).
fn decode_pieces(pieces: &[&[u8]], body_max: usize) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        let progress = decoder.decode(piece, &mut body, body_max)?;
        consumed += progress.consumed;
        assert_eq!(progress.done, decoder.is_done());
        assert_eq!(
            decoder.body_bytes(),
            body.len() as u64,
            "body_bytes counts the output"
        );
        if progress.done {
            return Ok((body, consumed, true));
        }
        assert_eq!(
            progress.consumed,
            piece.len(),
            "an unfinished body takes every byte"
        );
    }
    Ok((body, consumed, false))
}
