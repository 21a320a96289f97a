//! The data of small communication operations (docs/simulator.md, "Data of small operations").
//!
//! Phantom moves no data (DESIGN.md decision 6), with one exception that keeps real programs running: an
//! operation whose buffers are small carries its ranks' input bytes to the simulator, which computes what each
//! rank receives exactly as NCCL defines it. This is how `torch.distributed` exchanges metadata (DDP's
//! parameter-shape check and bucket rebuild, `all_gather_object`, `broadcast_object_list`): through tiny
//! collectives whose results steer the program.
//!
//! [`outputs`] is pure: one input per part of a matched operation (rank order for collectives; sender first
//! for point to point), one output per part. Reductions follow NCCL's types and operators: integers wrap,
//! `ncclAvg` of integers divides with truncation, 16-bit floats are reduced in `f32` and rounded to nearest
//! even once, as NCCL does within one kernel. PreMulSum operators (`ncclRedOpCreatePreMulSum`) carry a scalar
//! Phantom does not see: their results are zeros.

use super::proto::{OpDesc, OpKind};
use crate::net::CollOp;

/// Largest input of one rank's part (bytes) whose data travels; larger operations are timed only.
pub const MAX_BYTES: u64 = 1 << 20;

/// `ncclDataType_t` element sizes, by value (`ncclInt8` = 0 … `ncclFloat8e5m2` = 11).
pub fn dtype_size(dtype: i32) -> Option<u64> {
    Some(match dtype {
        0 | 1 | 10 | 11 => 1,
        6 | 9 => 2,
        2 | 3 | 7 => 4,
        4 | 5 | 8 => 8,
        _ => return None,
    })
}

/// Bytes one rank's part reads (`input`) and writes (`output`), for a communicator of `nranks` ranks.
/// Ranks that neither read nor write (a non-root of Reduce/Gather, the root-less side of Scatter, a sender's
/// output) still have a size: what NCCL's API requires of their buffers, or 0.
pub fn sizes(desc: &OpDesc, rank: u32, nranks: u32) -> (u64, u64) {
    let part = desc.bytes;
    let all = part.saturating_mul(u64::from(nranks));
    match desc.kind {
        OpKind::Coll { op, root, .. } => match op {
            CollOp::AllReduce | CollOp::Broadcast => (part, part),
            CollOp::Reduce => (part, if rank == root { part } else { 0 }),
            CollOp::AllGather => (part, all),
            CollOp::ReduceScatter => (all, part),
            CollOp::AllToAll => (all, all),
            CollOp::Gather => (part, if rank == root { all } else { 0 }),
            CollOp::Scatter => (if rank == root { all } else { 0 }, part),
            CollOp::SendRecv => (part, part),
        },
        OpKind::Send { .. } => (part, 0),
        OpKind::Recv { .. } => (0, part),
    }
}

/// Whether an operation's data travels: every part's input and output fit in [`MAX_BYTES`]. The same answer on
/// every rank (it depends only on what the ranks must agree on).
pub fn carries_data(desc: &OpDesc, nranks: u32) -> bool {
    (0..nranks.max(1)).all(|r| {
        let (i, o) = sizes(desc, r, nranks);
        i <= MAX_BYTES && o <= MAX_BYTES
    })
}

/// What each part receives, given every part's input (collectives: index = rank; point to point: [send, recv],
/// the receive's input empty). `desc` is any rank's description (the ranks agree on it).
pub fn outputs(desc: &OpDesc, inputs: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let n = inputs.len();
    let part = desc.bytes as usize;
    let want = |r: usize, i: &Vec<u8>| -> Result<(), String> {
        let (need, _) = sizes(desc, r as u32, n as u32);
        if (i.len() as u64) < need {
            return Err(format!("rank {r} sent {} bytes of data, the operation needs {need}", i.len()));
        }
        Ok(())
    };
    match desc.kind {
        OpKind::Send { .. } | OpKind::Recv { .. } => {
            let sent = inputs.first().cloned().unwrap_or_default();
            want(0, &sent).map_err(|e| e.replace("rank 0", "the sender"))?;
            Ok(vec![Vec::new(), sent[..part].to_vec()])
        }
        OpKind::Coll { op, root, redop } => {
            for (r, i) in inputs.iter().enumerate() {
                let (need, _) = sizes(desc, r as u32, n as u32);
                if need > 0 {
                    want(r, i)?;
                }
            }
            let root = root as usize;
            let reduce = |parts: Vec<&[u8]>| reduce(desc.dtype, redop, &parts);
            Ok(match op {
                CollOp::AllReduce => {
                    let out = reduce(inputs.iter().map(|i| &i[..part]).collect())?;
                    vec![out; n]
                }
                CollOp::Reduce => {
                    let out = reduce(inputs.iter().map(|i| &i[..part]).collect())?;
                    (0..n).map(|r| if r == root { out.clone() } else { Vec::new() }).collect()
                }
                CollOp::Broadcast => {
                    let src = inputs.get(root).ok_or("root out of range")?;
                    want(root, src)?;
                    vec![src[..part].to_vec(); n]
                }
                CollOp::AllGather => {
                    let out: Vec<u8> = inputs.iter().flat_map(|i| i[..part].iter().copied()).collect();
                    vec![out; n]
                }
                CollOp::Gather => {
                    let out: Vec<u8> = inputs.iter().flat_map(|i| i[..part].iter().copied()).collect();
                    (0..n).map(|r| if r == root { out.clone() } else { Vec::new() }).collect()
                }
                CollOp::ReduceScatter => {
                    let out = reduce(inputs.iter().map(|i| &i[..part * n]).collect())?;
                    out.chunks(part.max(1)).take(n).map(<[u8]>::to_vec).collect()
                }
                CollOp::Scatter => {
                    let src = inputs.get(root).ok_or("root out of range")?;
                    (0..n).map(|r| src[r * part..(r + 1) * part].to_vec()).collect()
                }
                CollOp::AllToAll => (0..n)
                    .map(|r| inputs.iter().flat_map(|i| i[r * part..(r + 1) * part].iter().copied()).collect())
                    .collect(),
                CollOp::SendRecv => return Err("SendRecv is not a collective".into()),
            })
        }
    }
}

/// Element-wise reduction of equally long byte strings holding `dtype` values.
pub fn reduce(dtype: i32, redop: i32, parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let size = dtype_size(dtype).ok_or_else(|| format!("unknown datatype {dtype}"))? as usize;
    let len = parts.first().map_or(0, |p| p.len());
    if parts.iter().any(|p| p.len() != len) || !len.is_multiple_of(size) {
        return Err("inputs of different lengths".into());
    }
    if !(0..=4).contains(&redop) {
        // PreMulSum: the scalar is not known here.
        return Ok(vec![0; len]);
    }
    let n = parts.len();
    let mut out = Vec::with_capacity(len);
    for e in (0..len).step_by(size) {
        let elems = parts.iter().map(|p| &p[e..e + size]);
        match dtype {
            0 => out.extend(int(elems.map(|b| i128::from(b[0] as i8)), redop, n).to_le_bytes()[..1].iter()),
            1 => out.extend(int(elems.map(|b| i128::from(b[0])), redop, n).to_le_bytes()[..1].iter()),
            2 => out.extend(int(elems.map(|b| i128::from(i32::from_le_bytes(b.try_into().unwrap()))), redop, n).to_le_bytes()[..4].iter()),
            3 => out.extend(int(elems.map(|b| i128::from(u32::from_le_bytes(b.try_into().unwrap()))), redop, n).to_le_bytes()[..4].iter()),
            4 => out.extend(int(elems.map(|b| i128::from(i64::from_le_bytes(b.try_into().unwrap()))), redop, n).to_le_bytes()[..8].iter()),
            5 => out.extend(int(elems.map(|b| i128::from(u64::from_le_bytes(b.try_into().unwrap()))), redop, n).to_le_bytes()[..8].iter()),
            6 => {
                let v = float(elems.map(|b| f64::from(half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())), redop, n);
                out.extend(half::f16::from_f32(v as f32).to_le_bytes());
            }
            7 => {
                let v = float(elems.map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))), redop, n);
                out.extend((v as f32).to_le_bytes());
            }
            8 => out.extend(float(elems.map(|b| f64::from_le_bytes(b.try_into().unwrap())), redop, n).to_le_bytes()),
            9 => {
                let v = float(elems.map(|b| f64::from(half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32())), redop, n);
                out.extend(half::bf16::from_f32(v as f32).to_le_bytes());
            }
            // 8-bit floats: no reduction modelled; zeros.
            _ => out.extend(std::iter::repeat_n(0, size)),
        }
    }
    Ok(out)
}

/// Integer reduction (wrapping to the type's width by the caller's truncation to its bytes).
fn int(values: impl Iterator<Item = i128>, redop: i32, n: usize) -> i128 {
    let v: Vec<i128> = values.collect();
    match redop {
        0 => v.iter().fold(0i128, |a, b| a.wrapping_add(*b)),
        1 => v.iter().fold(1i128, |a, b| a.wrapping_mul(*b)),
        2 => v.iter().copied().max().unwrap_or(0),
        3 => v.iter().copied().min().unwrap_or(0),
        _ => v.iter().fold(0i128, |a, b| a.wrapping_add(*b)) / n.max(1) as i128,
    }
}

/// Floating-point reduction in f64 (rounded once to the element type by the caller).
fn float(values: impl Iterator<Item = f64>, redop: i32, n: usize) -> f64 {
    let v: Vec<f64> = values.collect();
    match redop {
        0 => v.iter().sum(),
        1 => v.iter().product(),
        2 => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        3 => v.iter().copied().fold(f64::INFINITY, f64::min),
        _ => v.iter().sum::<f64>() / n.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coll(op: CollOp, count: u64, dtype: i32, redop: i32, root: u32) -> OpDesc {
        OpDesc { kind: OpKind::Coll { op, root, redop }, bytes: count * dtype_size(dtype).unwrap(), count, dtype }
    }

    fn i64s(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn all_gather_concatenates_in_rank_order() {
        let d = coll(CollOp::AllGather, 2, 4, 0, 0);
        let out = outputs(&d, &[i64s(&[1, 2]), i64s(&[3, 4]), i64s(&[5, 6])]).unwrap();
        assert_eq!(out, vec![i64s(&[1, 2, 3, 4, 5, 6]); 3]);
        assert_eq!(sizes(&d, 0, 3), (16, 48));
    }

    #[test]
    fn all_reduce_by_type_and_operator() {
        let d = coll(CollOp::AllReduce, 3, 4, 0, 0);
        assert_eq!(outputs(&d, &[i64s(&[1, -2, 3]), i64s(&[10, 20, 30])]).unwrap()[1], i64s(&[11, 18, 33]));
        let max = coll(CollOp::AllReduce, 2, 7, 2, 0);
        assert_eq!(outputs(&max, &[f32s(&[1.5, -1.0]), f32s(&[0.5, 2.0])]).unwrap()[0], f32s(&[1.5, 2.0]));
        let avg = coll(CollOp::AllReduce, 1, 4, 4, 0);
        assert_eq!(outputs(&avg, &[i64s(&[7]), i64s(&[8])]).unwrap()[0], i64s(&[7]));
        // uint8 sum wraps.
        assert_eq!(reduce(1, 0, &[&[200], &[100]]).unwrap(), vec![44]);
        // bf16: 1.0 + 2.0 = 3.0 (0x4040).
        assert_eq!(reduce(9, 0, &[&[0x80, 0x3f], &[0x00, 0x40]]).unwrap(), vec![0x40, 0x40]);
        // PreMulSum (a created operator, 5): zeros.
        assert_eq!(reduce(7, 5, &[&f32s(&[1.0]), &f32s(&[2.0])]).unwrap(), f32s(&[0.0]));
    }

    #[test]
    fn rooted_and_personalised_collectives() {
        let b = coll(CollOp::Broadcast, 1, 4, 0, 1);
        assert_eq!(outputs(&b, &[i64s(&[0]), i64s(&[42]), i64s(&[0])]).unwrap(), vec![i64s(&[42]); 3]);
        let r = coll(CollOp::Reduce, 1, 4, 0, 0);
        assert_eq!(outputs(&r, &[i64s(&[1]), i64s(&[2])]).unwrap(), vec![i64s(&[3]), vec![]]);
        let rs = coll(CollOp::ReduceScatter, 1, 4, 0, 0);
        assert_eq!(outputs(&rs, &[i64s(&[1, 2]), i64s(&[10, 20])]).unwrap(), vec![i64s(&[11]), i64s(&[22])]);
        let a2a = coll(CollOp::AllToAll, 1, 4, 0, 0);
        assert_eq!(
            outputs(&a2a, &[i64s(&[1, 2]), i64s(&[3, 4])]).unwrap(),
            vec![i64s(&[1, 3]), i64s(&[2, 4])]
        );
        let sc = coll(CollOp::Scatter, 1, 4, 0, 1);
        assert_eq!(outputs(&sc, &[vec![], i64s(&[5, 6])]).unwrap(), vec![i64s(&[5]), i64s(&[6])]);
    }

    #[test]
    fn point_to_point_delivers_the_senders_bytes() {
        let s = OpDesc { kind: OpKind::Send { peer: 1 }, bytes: 3, count: 3, dtype: 0 };
        assert_eq!(outputs(&s, &[vec![1, 2, 3], vec![]]).unwrap(), vec![vec![], vec![1, 2, 3]]);
        assert_eq!(sizes(&s, 0, 2), (3, 0));
    }

    #[test]
    fn short_input_is_an_error_and_large_ops_carry_no_data() {
        let d = coll(CollOp::AllReduce, 2, 4, 0, 0);
        assert_eq!(outputs(&d, &[i64s(&[1]), i64s(&[1, 2])]).unwrap_err(), "rank 0 sent 8 bytes of data, the operation needs 16");
        assert!(carries_data(&coll(CollOp::AllGather, 16384, 4, 0, 0), 8));
        assert!(!carries_data(&coll(CollOp::AllGather, 16385, 4, 0, 0), 8));
    }
}
