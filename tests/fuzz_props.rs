//! The fuzz targets' properties as ordinary tests, so `cargo test` checks
//! them on every run even where cargo-fuzz (and its nightly-only sanitizer
//! flags) is not installed.
//!
//! The properties themselves live in `fuzz/src/` and are included here
//! unchanged; this file only drives them. Each test feeds its target a
//! fixed-seed stream of inputs built from an alphabet of fragments that
//! matter to that parser (so short random runs still reach deep states),
//! plus hand-picked edge cases, and replays every file in `fuzz/seeds/`
//! (the seed corpus, which also keeps the inputs behind past findings). A
//! failure prints nothing special: the property's own assertion names what
//! broke, and the fixed seed makes it replay.
//! Long, coverage-guided runs are `fuzz/README.md`'s business.

#[path = "../fuzz/src/lib.rs"]
mod sluice_fuzz;

/// A tiny deterministic generator (xorshift64), so runs need no dependency
/// and fail the same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// `choices` random bytes followed by up to `parts` fragments.
    fn input(&mut self, choices: usize, alphabet: &[&[u8]], parts: usize) -> Vec<u8> {
        let mut input: Vec<u8> = (0..choices).map(|_| self.next() as u8).collect();
        for _ in 0..self.below(parts + 1) {
            input.extend_from_slice(alphabet[self.below(alphabet.len())]);
        }
        input
    }

    fn bytes(&mut self, len_max: usize) -> Vec<u8> {
        let len = self.below(len_max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const HTTP: &[&[u8]] = &[
    b"POST ",
    b"GET ",
    b"/stream/v0/data/is-AbCDefGH",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b" HTTP/2.0",
    b"\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"Host: a",
    b"Content-Length: 5",
    b"Content-Length: +5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"X-Amperity-Tenant: acme",
    b"Authorization: Bearer x",
    b"Content-Type: application/json",
    b": ",
    b" ",
    b"\t",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"a;b=c\r\n",
    b"X: y\r\n",
    b"nocolon\r\n",
    b"X : y\r\n",
    b"\x00",
    b"\x7f",
    "é".as_bytes(),
];

const JSON: &[&[u8]] = &[
    b"{",
    b"{",
    b"}",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"a\"",
    b"\"a\"",
    b"\"b\\n\\\"\"",
    b"\"\\ud800\"",
    b"\"\\ud83d\\ude00\"",
    b"\"\\u00e9\"",
    b"\"\\x\"",
    b"1",
    b"-0",
    b"1.50",
    b"1e400",
    b"1E-2",
    b"01",
    b"1.",
    b"true",
    b"null",
    b"nul",
    b" ",
    b"\n",
    b"\r\t",
    b"\xEF\xBB\xBF",
    "\"é\"".as_bytes(),
    b"\xff",
    b"\"\x01\"",
    b"{\"a\":1,\"a\":2}",
];

const XML: &[&[u8]] = &[
    b"<a>",
    b"</a>",
    b"<a>",
    b"</a>",
    b"<b x='1'>",
    b"<b x=\"&lt;\" y='2'>",
    b"</b>",
    b"<a/>",
    b"<?xml version=\"1.0\"?>",
    b"<?xml version=\"1.0\" encoding=\"latin1\"?>",
    b"<!-- c -->",
    b"<!-- -- -->",
    b"<![CDATA[x<]]>",
    b"&amp;",
    b"&#65;",
    b"&#x1F600;",
    b"&#0;",
    b"&foo;",
    b"<!DOCTYPE a>",
    b"text",
    b" ",
    b"\n",
    b"\r\n",
    b"<p:q xmlns:p='u'>",
    b"</p:q>",
    b"<?pi x?>",
    b"]]>",
    "é".as_bytes(),
    b"<",
    b">",
    b"\"",
    b"\xEF\xBB\xBF",
];

const TOKEN: &[&[u8]] = &[
    b"Bearer ",
    b"bearer\t",
    b"eyJhbGciOiJIUzI1NiJ9",
    b"e30",
    b".",
    b".",
    b"=",
    b"+/",
    b"AAAA",
    b" ",
];

/// Fragments of claims JSON for the raw-claims mode (first byte 1).
const CLAIMS: &[&[u8]] = &[
    b"{",
    b"}",
    b",",
    b"\"tenant\":\"acme\"",
    b"\"sub\":\"ak-write\"",
    b"\"scope\":\"stream:write\"",
    b"\"iat\":1699999990",
    b"\"exp\":1700003600",
    b"\"exp\":1699999940",
    b"\"nbf\":1700000061",
    b"\"jti\":\"j\"",
    b"\"tenant\":null",
];

#[test]
fn http_head_is_the_same_however_the_bytes_arrive() {
    let cases: &[&[u8]] = &[
        b"",
        b"\0\0\0\0POST /stream/v0/data/is-AbCDefGH HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET",
        b"\x01\x03\x00\x035;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
        // Trailer lines the head's rules refuse (a black-box audit found
        // them accepted), whole and split.
        b"\x01\x03\x00\x030\r\nnocolon\r\n\r\n",
        b"\x01\x09\x00\x030\r\nX-T : v\r\nY: \x7f\r\n\r\n",
        b"\0\0\0\0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        // Once refused as bare-line-ending whole, malformed-request-line split.
        b"\0\0\x01\0=\x9e\n",
    ];
    for case in cases {
        sluice_fuzz::http_head::check(case);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3_000 {
        let mut input = rng.input(4, HTTP, 24);
        // Requests start with a request line most of the time.
        if input[0] % 2 == 0 && rng.below(4) != 0 {
            let line: &[u8] = b"POST /stream/v0/data/is-AbCDefGH HTTP/1.1\r\nHost: h\r\n";
            input.splice(4..4, line.iter().copied());
        }
        sluice_fuzz::http_head::check(&input);
    }
}

#[test]
fn jwt_verify_accepts_exactly_the_valid_tokens() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..4_000 {
        sluice_fuzz::jwt_verify::check(&rng.bytes(24));
    }
    for _ in 0..500 {
        let mut raw = rng.input(0, TOKEN, 12);
        raw.insert(0, 0);
        sluice_fuzz::jwt_verify::check(&raw);
        let mut claims = rng.input(0, CLAIMS, 16);
        claims.insert(0, 1);
        sluice_fuzz::jwt_verify::check(&claims);
    }
    // The all-good token: every generated choice is zero.
    sluice_fuzz::jwt_verify::check(&[2]);
}

#[test]
fn json_convert_agrees_with_serde_json() {
    let cases: &[&[u8]] = &[
        b"{}",
        b"\xEF\xBB\xBF {\"a\" : [1.50, -0, 1e2, \"x\\u0041\"], \"a\": null}\n",
        b"{\"a\":1}{\"b\":2}",
        b"[]",
        b"{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    ];
    for case in cases {
        sluice_fuzz::json_convert::check(case);
    }
    for depth in [126, 127, 128, 129] {
        let deep = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        sluice_fuzz::json_convert::check(deep.as_bytes());
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..4_000 {
        let mut input = rng.input(0, JSON, 20);
        if rng.below(3) != 0 {
            input.insert(0, b'{');
        }
        sluice_fuzz::json_convert::check(&input);
    }
}

#[test]
fn xml_cbor_is_one_map_with_one_key() {
    let cases: &[&[u8]] = &[
        b"<a/>",
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r a=\"1\"><b>x</b><b/><c>&amp;<![CDATA[y]]></c> t </r>",
        b"<!DOCTYPE a><a/>",
    ];
    for case in cases {
        sluice_fuzz::xml_cbor::check(case);
    }
    let deep = format!("{}{}", "<a>".repeat(70), "</a>".repeat(70));
    sluice_fuzz::xml_cbor::check(deep.as_bytes());
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    for _ in 0..3_000 {
        let mut input = rng.input(0, XML, 20);
        if rng.below(3) != 0 {
            input.splice(0..0, b"<r>".iter().copied());
            input.extend_from_slice(b"</r>");
        }
        sluice_fuzz::xml_cbor::check(&input);
    }
}

#[test]
fn segment_recovery_yields_only_written_records() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..600 {
        sluice_fuzz::segment_recover::check(&rng.bytes(160));
    }
}

/// A fuzz target by name, with its property.
type Target = (&'static str, fn(&[u8]));

#[test]
fn seed_and_regression_inputs_replay() {
    let targets: [Target; 5] = [
        ("http_head", sluice_fuzz::http_head::check),
        ("jwt_verify", sluice_fuzz::jwt_verify::check),
        ("json_convert", sluice_fuzz::json_convert::check),
        ("xml_cbor", sluice_fuzz::xml_cbor::check),
        ("segment_recover", sluice_fuzz::segment_recover::check),
    ];
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut replayed = 0;
    for (target, check) in targets {
        let mut files: Vec<_> = std::fs::read_dir(seeds.join(target))
            .unwrap_or_else(|error| panic!("fuzz/seeds/{target}: {error}"))
            .map(|entry| entry.expect("a seed").path())
            .collect();
        files.sort();
        for file in files {
            check(&std::fs::read(&file).expect("read a seed"));
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "the seeds are there: {replayed}");
}
