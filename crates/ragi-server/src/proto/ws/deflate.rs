//! permessage-deflate (RFC 7692): negotiation, and the per-connection compressor and
//! decompressor.
//!
//! # Negotiation
//!
//! The client lists offers in `sec-websocket-extensions` (possibly several headers, each a
//! comma-separated list; parameters after `;`, values bare or quoted). [`negotiate`] takes the
//! first `permessage-deflate` offer that is valid and that we can honour — every offer we can
//! parse is one we can honour — and answers with the agreed parameters. An offer with an
//! unknown or repeated parameter or a bad value is declined and the next one is considered
//! (RFC 7692 §5); no acceptable offer means no extension (the handshake goes on without).
//!
//! What we answer to each parameter of the accepted offer:
//!
//! | offer | response | effect |
//! |---|---|---|
//! | `server_no_context_takeover` | echoed | our compressor is reset after every message |
//! | `client_no_context_takeover` | echoed | the client resets; we reset our decompressor too |
//! | `server_max_window_bits=N` | echoed | we compress with a window of 2^N (see below for 8) |
//! | `client_max_window_bits` (no value) | omitted | we do not limit the client |
//! | `client_max_window_bits=N` | echoed | the client already promised N; we agree |
//!
//! # Window bits
//!
//! We always inflate with 15 bits: a decoder with a larger window decodes any stream made with
//! a smaller one, so whatever the client uses is fine.
//!
//! We deflate with `server_max_window_bits` (15 when not offered) — except 8, because zlib
//! (and zlib-rs, and flate2's API) cannot make a raw deflate stream with a 256-byte window;
//! zlib silently turns 8 into 9 for zlib-wrapped streams and refuses it for raw ones. We then
//! compress with 9, which is still correct: zlib's deflate never emits a match distance beyond
//! `window size − MIN_LOOKAHEAD` (`MAX_DIST`, MIN_LOOKAHEAD = 258 + 3 + 1 = 262), so with a
//! 512-byte window the farthest back-reference is 250 bytes, within the 256-byte window the
//! client was promised. (zlib-rs keeps the same bound in all its strategies; the tests check
//! it by reading every distance out of a 9-bit stream full of repeats 200–300 bytes back.)
//!
//! # Memory
//!
//! A deflate state with a 15-bit window costs about 256 KiB, an inflate state about 40 KiB.
//! Both are made on first use, so a connection that negotiated the extension but sends or
//! receives no compressed message pays nothing for it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The parameters both sides agreed on (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window is at most 2^this bytes (8..=15).
    pub server_max_window_bits: u8,
    /// The client's LZ77 window is at most 2^this bytes (8..=15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// Chooses the first acceptable permessage-deflate offer among the `sec-websocket-extensions`
/// header values (several headers, comma-separated offers, params with or without quoted
/// values). Returns the params and the response header value (e.g.
/// `permessage-deflate; server_no_context_takeover; client_max_window_bits=12`), or `None`
/// (decline: no extension). Invalid offers (unknown params, duplicate params, bad values) are
/// skipped per RFC 7692 §5.
pub(crate) fn negotiate(offers: &[&[u8]]) -> Option<(DeflateParams, String)> {
    offers
        .iter()
        .flat_map(|value| Offers { s: value, at: 0 })
        .find_map(|offer| offer.and_then(accept))
}

/// One `extension-param`: a name and an optional value (unquoted).
#[derive(Debug)]
struct Param<'a> {
    name: &'a [u8],
    value: Option<Vec<u8>>,
}

/// One parsed list element: the extension name and its params.
#[derive(Debug)]
struct Offer<'a> {
    name: &'a [u8],
    params: Vec<Param<'a>>,
}

/// Iterates over the elements of one header value; `None` for an element that does not parse
/// (RFC 6455 §9.1 grammar), after which parsing resumes at the next top-level comma.
struct Offers<'a> {
    s: &'a [u8],
    at: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'a> Offers<'a> {
    fn skip_ows(&mut self) {
        while matches!(self.s.get(self.at), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while self.s.get(self.at).is_some_and(|&b| is_tchar(b)) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.s[start..self.at])
    }

    /// A quoted-string, unescaped (the opening quote is at `self.at`).
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match *self.s.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push(*self.s.get(self.at + 1)?);
                    self.at += 2;
                }
                b => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }

    fn element(&mut self) -> Option<Offer<'a>> {
        let name = self.token()?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.s.get(self.at) {
                None | Some(b',') => return Some(Offer { name, params }),
                Some(b';') => self.at += 1,
                Some(_) => return None,
            }
            self.skip_ows();
            let name = self.token()?;
            self.skip_ows();
            let value = if self.s.get(self.at) == Some(&b'=') {
                self.at += 1;
                self.skip_ows();
                let value = if self.s.get(self.at) == Some(&b'"') {
                    self.quoted()?
                } else {
                    self.token()?.to_vec()
                };
                // A quoted value must still be a token once unquoted (RFC 6455 §9.1).
                if value.is_empty() || !value.iter().all(|&b| is_tchar(b)) {
                    return None;
                }
                Some(value)
            } else {
                None
            };
            params.push(Param { name, value });
        }
    }

    /// Skips to the next comma outside a quoted-string.
    fn recover(&mut self) {
        let mut quoted = false;
        while let Some(&b) = self.s.get(self.at) {
            match b {
                b'"' => quoted = !quoted,
                b'\\' if quoted => self.at += 1,
                b',' if !quoted => return,
                _ => {}
            }
            self.at += 1;
        }
    }
}

impl<'a> Iterator for Offers<'a> {
    type Item = Option<Offer<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.skip_ows();
            match self.s.get(self.at) {
                None => return None,
                // Empty list elements are allowed (RFC 9110 §5.6.1).
                Some(b',') => self.at += 1,
                Some(_) => break,
            }
        }
        let offer = self.element();
        if offer.is_none() {
            self.recover();
        }
        // Now at a comma or the end.
        self.at += 1;
        Some(offer)
    }
}

/// Window bits: a decimal 8..=15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(value: &[u8]) -> Option<u8> {
    match value {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// The params and response for `offer`, or `None` when we decline it.
fn accept(offer: Offer<'_>) -> Option<(DeflateParams, String)> {
    if !offer.name.eq_ignore_ascii_case(b"permessage-deflate") {
        return None;
    }
    let mut params = DeflateParams::default();
    let (mut server_nct, mut client_nct) = (false, false);
    let (mut server_bits, mut client_bits): (Option<u8>, Option<Option<u8>>) = (None, None);
    for p in &offer.params {
        let name = p.name.to_ascii_lowercase();
        match (&name[..], &p.value) {
            (b"server_no_context_takeover", None) if !server_nct => server_nct = true,
            (b"client_no_context_takeover", None) if !client_nct => client_nct = true,
            (b"server_max_window_bits", Some(v)) if server_bits.is_none() => {
                server_bits = Some(window_bits(v)?);
            }
            (b"client_max_window_bits", v) if client_bits.is_none() => {
                client_bits = Some(match v {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    let mut response = String::from("permessage-deflate");
    if server_nct {
        params.server_no_context_takeover = true;
        response.push_str("; server_no_context_takeover");
    }
    if client_nct {
        params.client_no_context_takeover = true;
        response.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = server_bits {
        params.server_max_window_bits = bits;
        response.push_str("; server_max_window_bits=");
        response.push_str(&bits.to_string());
    }
    if let Some(Some(bits)) = client_bits {
        params.client_max_window_bits = bits;
        response.push_str("; client_max_window_bits=");
        response.push_str(&bits.to_string());
    }
    Some((params, response))
}

/// The tail every flushed message ends with, stripped by the sender (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why inflating stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The output went past the limit.
    TooBig,
    /// The input is not a valid deflate stream.
    Corrupt,
}

/// Inflates received messages.
#[derive(Debug)]
pub(crate) struct Inflater {
    /// Made on the first compressed message.
    state: Option<Decompress>,
    /// Reset after every message (the client does not take its context over).
    reset_each_message: bool,
    /// The current stream ended with a final block (BFINAL): input after it is ignored and the
    /// next message starts a new stream.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(params: &DeflateParams) -> Self {
        Self {
            state: None,
            reset_each_message: params.client_no_context_takeover,
            ended: false,
        }
    }

    /// Inflates `input` (a piece of a message's payload) onto `out`. `out` never grows past
    /// `limit + 1` bytes: inflating stops as soon as the message is known to be too big, so a
    /// small zip bomb costs at most `limit + 1` bytes of memory.
    pub(crate) fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        // Raw deflate, 15-bit window: decodes streams made with any smaller window.
        let state = self.state.get_or_insert_with(|| Decompress::new(false));
        let cap = limit.saturating_add(1);
        loop {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if self.ended {
                return Ok(());
            }
            if out.len() == out.capacity() {
                // Grow by doubling, but never past the limit (reserve_exact: we choose).
                let target = out.capacity().saturating_mul(2).max(4096).min(cap);
                out.reserve_exact(target - out.len());
            }
            let before = state.total_in();
            let status = state
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| InflateError::Corrupt)?;
            input = &input[(state.total_in() - before) as usize..];
            if status == Status::StreamEnd {
                self.ended = true;
            }
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            // Done when the input is used up and the output had room to spare: nothing is
            // held back inside the inflater.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    /// Ends a message: inflates the stripped tail, then resets if context is not taken over.
    /// `empty` tells that the message had no compressed payload at all: then nothing is fed,
    /// so a sender that compresses an empty message to zero bytes (rather than the `00` that
    /// RFC 7692 §7.2.3.6 shows) does not leave the inflater inside a half-read block.
    pub(crate) fn finish(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        empty: bool,
    ) -> Result<(), InflateError> {
        if !empty {
            self.inflate(&TAIL, out, limit)?;
        }
        if let Some(state) = &mut self.state {
            if self.reset_each_message {
                state.reset(false);
            } else if self.ended {
                // The client ended its stream with a final block (RFC 7692 §7.2.3.4) but still
                // takes its context over: the next message may refer back into this one. Start
                // a new stream primed with what we have of the window — this message's last
                // 32 KiB (a shorter message's earlier history is gone: flate2 cannot read
                // zlib's window back out).
                state.reset(false);
                let window = &out[out.len().saturating_sub(1 << 15)..];
                if !window.is_empty() {
                    let _ = state.set_dictionary(window);
                }
            }
        }
        self.ended = false;
        Ok(())
    }

    /// Total bytes inflated so far (tests: how far a zip bomb got).
    #[cfg(test)]
    pub(crate) fn total_out(&self) -> u64 {
        self.state.as_ref().map_or(0, Decompress::total_out)
    }
}

/// Compresses sent messages.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// Made on the first message.
    state: Option<Compress>,
    window_bits: u8,
    reset_each_message: bool,
}

impl Deflater {
    pub(crate) fn new(params: &DeflateParams) -> Self {
        Self {
            state: None,
            // 8 cannot be made raw; 9 is decodable with 8 (see the module docs).
            window_bits: params.server_max_window_bits.clamp(9, 15),
            reset_each_message: params.server_no_context_takeover,
        }
    }

    /// Compresses one whole message into `out` (cleared first): deflate, sync flush, the
    /// `00 00 ff ff` tail stripped. Never empty: an empty message is `00` (RFC 7692 §7.2.3.6).
    pub(crate) fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        let bits = self.window_bits;
        let state = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::default(), false, bits)
        });
        out.clear();
        // Enough for incompressible input in one go: stored blocks cost 5 bytes per 64 KiB.
        out.reserve(input.len() + input.len() / 4096 + 64);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = state.total_in();
            // Compressing a slice in memory cannot fail: errors are for misuse of the stream.
            if state.compress_vec(input, out, FlushCompress::Sync).is_err() {
                debug_assert!(false, "deflate failed");
                break;
            }
            input = &input[(state.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.is_empty() {
            // zlib emits nothing for a flush right after a flush (an empty message on a
            // stream that takes context over); an empty stored block is what the peer expects.
            out.push(0x00);
        }
        if self.reset_each_message {
            state.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(offers: &[&str]) -> Option<(DeflateParams, String)> {
        let offers: Vec<&[u8]> = offers.iter().map(|s| s.as_bytes()).collect();
        negotiate(&offers)
    }

    fn response(offers: &[&str]) -> Option<String> {
        neg(offers).map(|(_, r)| r)
    }

    #[test]
    fn plain_offer() {
        let (params, response) = neg(&["permessage-deflate"]).unwrap();
        assert_eq!(params, DeflateParams::default());
        assert_eq!(response, "permessage-deflate");
    }

    #[test]
    fn autobahn_12_and_13_offers() {
        // client_max_window_bits without a value: we do not limit the client.
        let (params, r) = neg(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!(params.client_max_window_bits, 15);

        let (params, r) = neg(&["permessage-deflate; server_max_window_bits=8"]).unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=8");
        assert_eq!(params.server_max_window_bits, 8);

        let (params, r) =
            neg(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])
                .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);

        let (params, r) =
            neg(&["permessage-deflate; client_max_window_bits=9; server_max_window_bits=15"])
                .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=9"
        );
        assert_eq!(params.client_max_window_bits, 9);

        let (_, r) =
            neg(&["permessage-deflate; server_no_context_takeover; client_max_window_bits=12"])
                .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
        );
    }

    #[test]
    fn first_acceptable_of_several_offers_in_one_header() {
        // Autobahn 13.7.x style: a list of offers, most preferred first.
        let r = response(&[
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8, permessage-deflate; client_max_window_bits, permessage-deflate",
        ]);
        assert_eq!(
            r.unwrap(),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"
        );
        // The first is invalid (bits out of range): the second is taken.
        let r = response(&["permessage-deflate; server_max_window_bits=16, permessage-deflate; client_no_context_takeover"]);
        assert_eq!(r.unwrap(), "permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn offers_over_several_headers() {
        let r = response(&[
            "x-webkit-deflate-frame",
            "permessage-deflate; foo=1",
            "  , permessage-deflate ; server_no_context_takeover ",
        ]);
        assert_eq!(r.unwrap(), "permessage-deflate; server_no_context_takeover");
        // Other extensions alone: declined.
        assert_eq!(response(&["x-webkit-deflate-frame", "foo; bar"]), None);
        assert_eq!(response(&[]), None);
        assert_eq!(response(&[""]), None);
    }

    #[test]
    fn quoted_values() {
        let (params, r) = neg(&[
            r#"permessage-deflate; client_max_window_bits="10"; server_max_window_bits = "11""#,
        ])
        .unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        assert_eq!(params.server_max_window_bits, 11);
        assert_eq!(
            r,
            "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"
        );
        // An escaped digit is still the digit.
        assert!(neg(&[r#"permessage-deflate; server_max_window_bits="1\2""#]).is_some());
        // A quoted comma is not a list separator; the value is not a token, so the offer is
        // declined, and the next one is taken.
        let r =
            response(&[r#"permessage-deflate; server_max_window_bits="9,10", permessage-deflate"#]);
        assert_eq!(r.unwrap(), "permessage-deflate");
    }

    #[test]
    fn invalid_offers_are_skipped() {
        for bad in [
            "permessage-deflate; unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=8; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            r#"permessage-deflate; client_max_window_bits="10"#,
            "permessage-deflate server_no_context_takeover",
            "permessage-deflate;",
            "permessage-deflate; =9",
        ] {
            assert_eq!(response(&[bad]), None, "{bad}");
            assert_eq!(
                response(&[bad, "permessage-deflate"]).as_deref(),
                Some("permessage-deflate"),
                "{bad}, then a good one"
            );
        }
        // After a broken element in the same header, parsing resumes at the next comma.
        assert_eq!(
            response(&["permessage-deflate ;; x, permessage-deflate; client_no_context_takeover"])
                .as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(
            response(&["Permessage-Deflate; Server_No_Context_Takeover"]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    /// Compresses `data` with `bits` (a final block), for the window checks below.
    fn deflate_final(data: &[u8], bits: u8) -> Vec<u8> {
        let mut c = Compress::new_with_window_bits(Compression::best(), false, bits);
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        let status = c
            .compress_vec(data, &mut out, FlushCompress::Finish)
            .unwrap();
        assert_eq!(status, Status::StreamEnd);
        out
    }

    /// A minimal inflater (after zlib's `puff.c`) that returns the output and the farthest
    /// distance any back-reference used. (zlib-rs always keeps a 32 KiB window, so inflating
    /// with an 8-bit window there proves nothing.) The stream must end with a final block.
    fn inflate_farthest(data: &[u8]) -> (Vec<u8>, usize) {
        struct Bits<'a> {
            data: &'a [u8],
            at: usize,
        }
        impl Bits<'_> {
            fn get(&mut self, n: u32) -> usize {
                let mut v = 0;
                for i in 0..n {
                    let bit = (self.data[self.at / 8] >> (self.at % 8)) & 1;
                    v |= usize::from(bit) << i;
                    self.at += 1;
                }
                v
            }
        }
        /// Canonical Huffman code from code lengths: (count per length, symbols by code).
        fn huffman(lengths: &[u8]) -> ([usize; 16], Vec<usize>) {
            let mut count = [0usize; 16];
            for &l in lengths {
                count[usize::from(l)] += 1;
            }
            count[0] = 0;
            let mut symbols: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] != 0).collect();
            symbols.sort_by_key(|&s| lengths[s]);
            (count, symbols)
        }
        fn symbol(bits: &mut Bits<'_>, (count, symbols): &([usize; 16], Vec<usize>)) -> usize {
            let (mut code, mut first, mut index) = (0usize, 0usize, 0usize);
            for &n in &count[1..] {
                code |= bits.get(1);
                if code < first + n {
                    return symbols[index + code - first];
                }
                index += n;
                first = (first + n) << 1;
                code <<= 1;
            }
            panic!("bad code");
        }
        const LEN_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEN_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        let mut bits = Bits { data, at: 0 };
        let (mut out, mut farthest) = (Vec::new(), 0);
        loop {
            let last = bits.get(1) == 1;
            let codes = match bits.get(2) {
                0 => {
                    bits.at = bits.at.div_ceil(8) * 8;
                    let len = bits.get(16);
                    bits.get(16);
                    for _ in 0..len {
                        out.push(bits.get(8) as u8);
                    }
                    None
                }
                1 => {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    Some((huffman(&l), huffman(&[5; 30])))
                }
                2 => {
                    let (nlen, ndist, ncode) =
                        (bits.get(5) + 257, bits.get(5) + 1, bits.get(4) + 4);
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut cl = [0u8; 19];
                    for &o in &ORDER[..ncode] {
                        cl[o] = bits.get(3) as u8;
                    }
                    let cl = huffman(&cl);
                    let mut lengths = Vec::new();
                    while lengths.len() < nlen + ndist {
                        match symbol(&mut bits, &cl) {
                            s @ 0..=15 => lengths.push(s as u8),
                            16 => {
                                let prev = *lengths.last().unwrap();
                                lengths.extend(std::iter::repeat_n(prev, 3 + bits.get(2)));
                            }
                            17 => lengths.extend(std::iter::repeat_n(0, 3 + bits.get(3))),
                            _ => lengths.extend(std::iter::repeat_n(0, 11 + bits.get(7))),
                        }
                    }
                    Some((huffman(&lengths[..nlen]), huffman(&lengths[nlen..])))
                }
                _ => panic!("reserved block type"),
            };
            if let Some((lit, dist)) = codes {
                loop {
                    match symbol(&mut bits, &lit) {
                        s @ 0..=255 => out.push(s as u8),
                        256 => break,
                        s => {
                            let i = s - 257;
                            let len = LEN_BASE[i] + bits.get(LEN_EXTRA[i]);
                            let d = symbol(&mut bits, &dist);
                            let distance = DIST_BASE[d] + bits.get(DIST_EXTRA[d]);
                            farthest = farthest.max(distance);
                            for _ in 0..len {
                                out.push(out[out.len() - distance]);
                            }
                        }
                    }
                }
            }
            if last {
                return (out, farthest);
            }
        }
    }

    /// A text whose repeats lie 200–300 bytes back: within a 512-byte window, so a 9-bit
    /// compressor would reference them all if it did not keep its distances to 250.
    fn far_repeats() -> Vec<u8> {
        let mut state = 0x2545_f491u32;
        let block: Vec<u8> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                b'a' + (state % 26) as u8
            })
            .collect();
        let mut data = Vec::new();
        for i in 0..40 {
            data.extend_from_slice(&block[..200 + (i * 7) % 100]);
        }
        data
    }

    #[test]
    fn a_9_bit_stream_inflates_with_an_8_bit_window() {
        let data = far_repeats();
        let nine = deflate_final(&data, 9);
        assert!(nine.len() < data.len() / 2, "the near repeats were used");
        let (out, farthest) = inflate_farthest(&nine);
        assert_eq!(out, data);
        assert!(farthest <= 256, "{farthest}");
        // The check has teeth: a 10-bit stream references farther than 256 bytes.
        let (out, farthest) = inflate_farthest(&deflate_final(&data, 10));
        assert_eq!(out, data);
        assert!(farthest > 256, "{farthest}");
    }

    #[test]
    fn server_max_window_bits_8_compresses_with_9() {
        let (params, _) = neg(&["permessage-deflate; server_max_window_bits=8"]).unwrap();
        let mut d = Deflater::new(&params);
        assert_eq!(d.window_bits, 9);
        let data = far_repeats();
        let mut out = Vec::new();
        d.compress(&data, &mut out);
        // The tail, then an empty final block (fixed Huffman, end of block) to end the stream.
        out.extend_from_slice(&TAIL);
        out.extend_from_slice(&[0x03, 0x00]);
        let (got, farthest) = inflate_farthest(&out);
        assert_eq!(got, data);
        assert!(farthest <= 256, "{farthest}");
    }

    #[test]
    fn rfc_7692_hello() {
        let mut d = Deflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // Context takeover: the second "Hello" refers back to the first (§7.2.3.2).
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);

        let mut i = Inflater::new(&DeflateParams::default());
        let mut msg = Vec::new();
        i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut msg, 100)
            .unwrap();
        i.finish(&mut msg, 100, false).unwrap();
        assert_eq!(msg, b"Hello");
        msg.clear();
        i.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut msg, 100)
            .unwrap();
        i.finish(&mut msg, 100, false).unwrap();
        assert_eq!(msg, b"Hello");
    }

    #[test]
    fn no_context_takeover_compresses_every_message_alike() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut d = Deflater::new(&params);
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    }

    #[test]
    fn empty_messages_are_one_zero_byte() {
        for params in [
            DeflateParams::default(),
            DeflateParams {
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ] {
            let mut d = Deflater::new(&params);
            let mut i = Inflater::new(&params);
            let mut out = Vec::new();
            for msg in [&b""[..], b"", b"abc", b"", b"abc", b""] {
                d.compress(msg, &mut out);
                if msg.is_empty() {
                    assert_eq!(out, [0x00]);
                }
                let mut got = Vec::new();
                i.inflate(&out, &mut got, 100).unwrap();
                i.finish(&mut got, 100, false).unwrap();
                assert_eq!(got, msg);
            }
        }
    }

    #[test]
    fn rfc_7692_no_compression_block() {
        // §7.2.3.3: "Hello" in a stored block.
        let mut i = Inflater::new(&DeflateParams::default());
        let mut msg = Vec::new();
        i.inflate(
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            &mut msg,
            100,
        )
        .unwrap();
        i.finish(&mut msg, 100, false).unwrap();
        assert_eq!(msg, b"Hello");
    }

    #[test]
    fn bfinal_block_then_a_new_stream() {
        // §7.2.3.4: "Hello" with BFINAL set; the next message starts afresh.
        let mut i = Inflater::new(&DeflateParams::default());
        for _ in 0..2 {
            let mut msg = Vec::new();
            // (The RFC's example has one more 00 after the final block; it is ignored.)
            i.inflate(
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
                &mut msg,
                100,
            )
            .unwrap();
            i.finish(&mut msg, 100, false).unwrap();
            assert_eq!(msg, b"Hello");
        }
    }

    #[test]
    fn context_carries_over_a_bfinal_block() {
        // The RFC's BFINAL "Hello", then a message that refers back to it.
        let mut c = Compress::new(Compression::default(), false);
        c.set_dictionary(b"Hello").unwrap();
        let mut second = Vec::with_capacity(64);
        c.compress_vec(b"Hello, Hello", &mut second, FlushCompress::Sync)
            .unwrap();
        assert!(second.ends_with(&TAIL));
        second.truncate(second.len() - 4);
        let mut i = Inflater::new(&DeflateParams::default());
        let mut msg = Vec::new();
        i.inflate(
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            &mut msg,
            100,
        )
        .unwrap();
        i.finish(&mut msg, 100, false).unwrap();
        assert_eq!(msg, b"Hello");
        msg.clear();
        i.inflate(&second, &mut msg, 100).unwrap();
        i.finish(&mut msg, 100, false).unwrap();
        assert_eq!(msg, b"Hello, Hello");
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let mut d = Deflater::new(&DeflateParams::default());
        let mut bomb = Vec::new();
        d.compress(&zeros, &mut bomb);
        assert!(bomb.len() < 2048);
        let mut i = Inflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        assert_eq!(i.inflate(&bomb, &mut out, 1000), Err(InflateError::TooBig));
        assert!(out.capacity() <= 1001, "{}", out.capacity());
        assert!(i.total_out() <= 1001);
        // Exactly at the limit is fine.
        let mut i = Inflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        i.inflate(&bomb, &mut out, 1 << 20).unwrap();
        i.finish(&mut out, 1 << 20, false).unwrap();
        assert_eq!(out.len(), 1 << 20);
    }

    #[test]
    fn corrupt_input() {
        let mut i = Inflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        assert_eq!(
            i.inflate(&[0xff, 0xff], &mut out, 100),
            Err(InflateError::Corrupt)
        );
    }
}
