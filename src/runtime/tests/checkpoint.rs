//! Checkpoint round trip (bit-exact) and corrupted files (always `Err` or identical data,
//! never a panic).

use crate::runtime::checkpoint::{load, save};
use crate::runtime::nets::mlp::add_mlp;
use crate::runtime::nets::params::{GradMap, ParamStore};
use crate::runtime::optim::{Adam, AdamConfig};
use crate::runtime::rng::seeded;
use crate::runtime::Dev;

fn setup() -> (ParamStore, Adam, std::path::PathBuf) {
    let mut rng = seeded(40);
    let mut st = ParamStore::new(Dev::default());
    add_mlp(&mut st, "enc", &[3, 4, 2], &mut rng).unwrap();
    let mut adam = Adam::new(AdamConfig {
        weight_decay: 0.5,
        decoupled: true,
        ..Default::default()
    });
    let g: GradMap = st
        .iter()
        .map(|(k, p)| (k.clone(), vec![0.25; p.numel()]))
        .collect();
    adam.update(&mut st, &g, 1e-3).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "vic-rt-ckpt-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    (st, adam, dir)
}

#[test]
fn round_trip() {
    let (st, adam, dir) = setup();
    let path = dir.join("model.safetensors");
    save(&path, &st, Some(&adam), r#"{"epoch": 3, "model": "vae"}"#).unwrap();
    let ck = load(&path, &Dev::default()).unwrap();
    assert_eq!(ck.meta, r#"{"epoch": 3, "model": "vae"}"#);
    assert_eq!(ck.adam.as_ref(), Some(&adam));
    assert_eq!(ck.params.len(), st.len());
    for (name, p) in st.iter() {
        let q = ck.params.get(name).unwrap();
        assert_eq!(p.shape(), q.shape());
        assert_eq!(p.to_host(), q.to_host());
    }
    // overwrite in place, no optimiser; no temp files left behind
    save(&path, &st, None, "{}").unwrap();
    assert!(load(&path, &Dev::default()).unwrap().adam.is_none());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_files_are_errors() {
    let (st, adam, dir) = setup();
    let path = dir.join("c.safetensors");
    save(&path, &st, Some(&adam), "{}").unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.safetensors");
    let dev = Dev::default();
    assert!(load(&dir.join("missing.safetensors"), &dev).is_err());
    for bytes in [
        vec![],
        vec![1, 2, 3],
        vec![0xff; 64],
        good[..good.len() - 1].to_vec(),
        good[..good.len() / 2].to_vec(),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        assert!(load(&bad, &dev).is_err());
    }
    // a flipped byte anywhere: an error, or (in header padding) the identical checkpoint
    let hdr = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
    let mut data_flips_rejected = 0;
    for pos in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[pos] ^= 0x5a;
        std::fs::write(&bad, &b).unwrap();
        match load(&bad, &dev) {
            Err(_) => data_flips_rejected += usize::from(pos >= hdr),
            Ok(ck) => {
                for (name, p) in st.iter() {
                    assert_eq!(
                        ck.params.get(name).unwrap().to_host(),
                        p.to_host(),
                        "flip at {pos}"
                    );
                }
            }
        }
    }
    assert_eq!(
        data_flips_rejected,
        (hdr..good.len()).step_by(1).filter(|p| p % 7 == 0).count()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
