#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn limits() -> CodecLimits {
    CodecLimits {
        max_bulk: 1024,
        max_args: 16,
        max_command: 4096,
    }
}

/// A command's length and arguments.
type Read = (usize, Vec<Vec<u8>>);

/// The arguments of the first command of `input`, and its length.
fn first(input: &[u8]) -> Result<Option<Read>, ProtocolError> {
    let mut args = Vec::new();
    Ok(parse(input, &limits(), &mut args)?.map(|len| {
        let values = args.iter().map(|r| input[r.clone()].to_vec()).collect();
        (len, values)
    }))
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An array of bulk strings is one command, however its bytes are split, and a value may
/// hold any byte.
#[test]
fn reads_arrays_of_bulk_strings() {
    let input = encode(&[b"SET", b"users:42", b"a\r\nb\0c"]);
    let (len, args) = first(&input).unwrap().unwrap();
    assert_eq!(len, input.len());
    assert_eq!(
        args,
        vec![b"SET".to_vec(), b"users:42".to_vec(), b"a\r\nb\0c".to_vec()]
    );
    for cut in 0..input.len() {
        assert_eq!(first(&input[..cut]).unwrap(), None, "cut at {cut}");
    }
}

/// Two pipelined commands: the first is answered alone, the second follows.
#[test]
fn reads_one_command_of_a_pipeline() {
    let mut input = encode(&[b"GET", b"a:1"]);
    let one = input.len();
    input.extend(encode(&[b"GET", b"a:2"]));
    let (len, args) = first(&input).unwrap().unwrap();
    assert_eq!(len, one);
    assert_eq!(args[1], b"a:1");
    let (_, args) = first(&input[one..]).unwrap().unwrap();
    assert_eq!(args[1], b"a:2");
}

/// Inline commands split at blanks; a blank line is an empty command.
#[test]
fn reads_inline_commands() {
    let (len, args) = first(b"GET  users:1\r\nPING\r\n").unwrap().unwrap();
    assert_eq!(len, 14);
    assert_eq!(args, vec![b"GET".to_vec(), b"users:1".to_vec()]);
    assert_eq!(first(b"PING\n").unwrap().unwrap().1, vec![b"PING".to_vec()]);
    assert_eq!(first(b"\r\n").unwrap().unwrap(), (2, vec![]));
    assert_eq!(first(b"PIN").unwrap(), None);
    assert_eq!(first(b"SET k \"a b\"\r\n"), Err(ProtocolError::BadInline));
}

/// Lengths over the limits are refused before their bytes are waited for.
#[test]
fn refuses_what_is_over_the_limits() {
    assert!(matches!(
        first(b"*17\r\n"),
        Err(ProtocolError::TooManyArgs { len: 17, max: 16 })
    ));
    assert!(matches!(
        first(b"*1\r\n$1025\r\n"),
        Err(ProtocolError::BulkTooLong { len: 1025, .. })
    ));
    assert!(matches!(
        first(b"*1\r\n$99999999999999999999999\r\n"),
        Err(ProtocolError::BadNumber(_))
    ));
    assert_eq!(
        first(b"*1\r\n$-1\r\n"),
        Err(ProtocolError::BadNumber("bulk length"))
    );
    // Five values of 1000 bytes: each fits, together they are over max_command.
    let big = vec![b'x'; 1000];
    let input = encode(&[&big, &big, &big, &big, &big]);
    assert!(matches!(first(&input[..20]), Ok(None)));
    assert_eq!(
        first(&input),
        Err(ProtocolError::CommandTooLong { max: 4096 })
    );
    let line = vec![b'a'; MAX_INLINE_BYTES];
    assert_eq!(first(&line), Err(ProtocolError::InlineTooLong));
}

/// What is not RESP is refused, whatever the client hoped.
#[test]
fn refuses_malformed_input() {
    assert_eq!(
        first(b"*1\r\n:1\r\n"),
        Err(ProtocolError::ExpectedBulk(b':'))
    );
    assert_eq!(
        first(b"*x\r\n"),
        Err(ProtocolError::BadNumber("multibulk length"))
    );
    assert_eq!(
        first(b"*1\rx"),
        Err(ProtocolError::BadNumber("multibulk length"))
    );
    assert_eq!(
        first(b"*1\r\n$3\r\nGETxx"),
        Err(ProtocolError::Unterminated)
    );
    assert_eq!(
        first(b"*1\r\n$\r\n"),
        Err(ProtocolError::BadNumber("bulk length"))
    );
    assert_eq!(first(b"*0\r\n").unwrap(), Some((4, vec![])));
    assert_eq!(first(b"*-1\r\n").unwrap(), Some((5, vec![])));
}

proptest! {
    /// Any bytes, whole or cut anywhere: the parser answers (never panics), and a command
    /// it reads lies within the input with every argument inside it.
    #[test]
    fn never_panics_on_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
        let mut args = Vec::new();
        let cut = cut.min(input.len());
        for part in [&input[..], &input[..cut]] {
            if let Ok(Some(len)) = parse(part, &limits(), &mut args) {
                prop_assert!(len <= part.len());
                for r in &args {
                    prop_assert!(r.start <= r.end && r.end <= len);
                }
            }
        }
    }

    /// Sequences of RESP's own pieces (markers, lengths, line ends) and stray bytes: the
    /// array and bulk paths meet every odd combination, and still only answer.
    #[test]
    fn never_panics_on_resp_like_pieces(pieces in proptest::collection::vec(
        prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()), Just(b"-".to_vec()), Just(b"0".to_vec()),
            (0u64..5000).prop_map(|n| n.to_string().into_bytes()),
            Just(b"99999999999999999999999999".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
        0..24,
    )) {
        let input = pieces.concat();
        let mut args = Vec::new();
        for end in 0..=input.len() {
            if let Ok(Some(len)) = parse(&input[..end], &limits(), &mut args) {
                prop_assert!(len <= end);
                for r in &args {
                    prop_assert!(r.start <= r.end && r.end <= len);
                }
            }
        }
    }

    /// Well-formed arrays whose bytes arrive in fragments: nothing is read until the last
    /// fragment, then exactly the arguments sent.
    #[test]
    fn reads_fragmented_commands(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let input = encode(&refs);
        for cut in cuts {
            let at = cut.index(input.len());
            prop_assert_eq!(first(&input[..at]).unwrap(), None);
        }
        let (len, read) = first(&input).unwrap().unwrap();
        prop_assert_eq!(len, input.len());
        prop_assert_eq!(read, args);
    }

    /// A valid command followed by garbage: the command is read, the garbage is left.
    #[test]
    fn garbage_after_a_command_is_left(garbage in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = encode(&[b"PING"]);
        let one = input.len();
        input.extend(garbage);
        let (len, _) = first(&input).unwrap().unwrap();
        prop_assert_eq!(len, one);
    }
}
