//! 16 concurrent runtimes churning ADD/DEL through the real binary on one /20: no address
//! is ever held twice, and the store ends equal to the attachments not deleted.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use common::{SHARED, held, ipam, netconf};
use serde_json::json;
use tempfile::TempDir;

const WORKERS: usize = 16;
const OPS_PER_WORKER: usize = 640; // 10,240 operations in all

#[test]
fn sixteen_way_churn_never_duplicates_and_ends_consistent() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("churn.db");
    let conf = Arc::new(netconf(
        "1.1.0",
        "churn",
        &db,
        json!({"range": "10.20.0.0/20"}),
    ));
    // ip -> attachment currently holding it, as observed by the runtimes.
    let live: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut handles = Vec::new();
    for worker in 0..WORKERS {
        let (conf, live) = (Arc::clone(&conf), Arc::clone(&live));
        handles.push(std::thread::spawn(move || {
            let mut mine: Vec<(String, String)> = Vec::new(); // (container, ip)
            let mut seq = 0usize;
            for op in 0..OPS_PER_WORKER {
                // Grow to ~40 live attachments per worker, then mix ADD and DEL.
                let add = mine.len() < 8 || (op % 3 != 0 && mine.len() < 40);
                if add {
                    seq += 1;
                    let container = format!("w{worker}-{seq}");
                    let ips = ipam("ADD", &container, "eth0", &conf).ips();
                    assert_eq!(ips.len(), 1);
                    let ip = ips[0].clone();
                    let previous = live.lock().unwrap().insert(ip.clone(), container.clone());
                    assert!(
                        previous.is_none(),
                        "{ip} handed to {container} while {previous:?} holds it"
                    );
                    mine.push((container, ip));
                } else {
                    let (container, ip) = mine.swap_remove(op % mine.len());
                    // Forget it before DEL: until DEL commits nobody else can get it.
                    live.lock().unwrap().remove(&ip);
                    ipam("DEL", &container, "eth0", &conf).ok();
                }
            }
            mine
        }));
    }
    let mut expected = BTreeSet::new();
    for handle in handles {
        for (container, ip) in handle.join().expect("worker panicked") {
            expected.insert((container, "eth0".to_string(), ip));
        }
    }
    let stored: BTreeSet<_> = held(&db, SHARED).into_iter().collect();
    assert_eq!(stored.len(), held(&db, SHARED).len(), "no duplicate rows");
    let ips: BTreeSet<_> = stored.iter().map(|(_, _, ip)| ip.clone()).collect();
    assert_eq!(ips.len(), stored.len(), "no address held twice");
    assert_eq!(stored, expected, "store == attachments not deleted");
}
