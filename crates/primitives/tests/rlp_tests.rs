//! Ethereum RLPTests: encodings are bit-exact and every invalid input is rejected by alloy-rlp's
//! strict decoder, which every consort codec uses.

use alloy_rlp::{Encodable, Header};
use std::path::PathBuf;

#[path = "../../../tests/support/conformance.rs"]
mod conformance;

fn encode(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::String(s) => match s.strip_prefix('#') {
            Some(big) => decimal_be_bytes(big).as_slice().encode(out),
            None => s.as_bytes().encode(out),
        },
        serde_json::Value::Number(n) => n.as_u64().unwrap().encode(out),
        serde_json::Value::Array(items) => {
            let mut payload = Vec::new();
            for item in items {
                encode(item, &mut payload);
            }
            Header {
                list: true,
                payload_length: payload.len(),
            }
            .encode(out);
            out.extend_from_slice(&payload);
        }
        other => panic!("unexpected input {other}"),
    }
}

/// A decimal integer of any size as minimal big-endian bytes (RLP's integer form).
fn decimal_be_bytes(decimal: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for digit in decimal.bytes().map(|b| u32::from(b - b'0')) {
        let mut carry = digit;
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    out
}

/// Walks an RLP item strictly; the whole input must be exactly one item.
fn decode_item(buf: &mut &[u8]) -> Result<(), alloy_rlp::Error> {
    let header = Header::decode(buf)?;
    if buf.len() < header.payload_length {
        return Err(alloy_rlp::Error::InputTooShort);
    }
    let (mut payload, rest) = buf.split_at(header.payload_length);
    *buf = rest;
    if header.list {
        while !payload.is_empty() {
            decode_item(&mut payload)?;
        }
    }
    Ok(())
}

fn decode_all(bytes: &[u8]) -> Result<(), alloy_rlp::Error> {
    let mut buf = bytes;
    decode_item(&mut buf)?;
    if buf.is_empty() {
        Ok(())
    } else {
        Err(alloy_rlp::Error::UnexpectedLength)
    }
}

fn cases(file: PathBuf) -> Vec<(String, serde_json::Value, Vec<u8>)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["in"].clone(),
                alloy_primitives::hex::decode(v["out"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn rlp_tests() {
    let Some(dir) = conformance::find("ethereum-tests/RLPTests") else {
        return;
    };
    let mut files = vec![dir.join("rlptest.json"), dir.join("invalidRLPTest.json")];
    files.extend(
        std::fs::read_dir(dir.join("RandomRLPTests"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    let mut count = 0;
    for file in files {
        for (name, input, out) in cases(file) {
            match input.as_str() {
                Some("INVALID") => {
                    assert!(decode_all(&out).is_err(), "{name}: invalid input accepted")
                }
                Some("VALID") => assert!(decode_all(&out).is_ok(), "{name}: valid input rejected"),
                _ => {
                    let mut encoded = Vec::new();
                    encode(&input, &mut encoded);
                    assert_eq!(encoded, out, "{name}");
                    decode_all(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            count += 1;
        }
    }
    assert!(count > 50, "only {count} RLP cases");
}
