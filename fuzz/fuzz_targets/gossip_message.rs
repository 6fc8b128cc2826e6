//! stele-cluster gossip: the JSON `GossipMessage` a node receives on `POST /gossip`, then what
//! `Node::receive_gossip` does with it that needs no node: the member table's clock and
//! cluster checks, the merge, and the member list it answers with.
//!
//! Input: a byte choosing this node's cluster (none, or one of two), then the JSON body.
//!
//! Checks: nothing panics; a message that parses serialises to JSON that parses to the same
//! JSON; members merged are never this node itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stele_cluster::gossip::MemberTable;
use stele_cluster::{GossipConfig, GossipMessage};
use stele_fuzz::Input;
use uuid::Uuid;

const ME: Uuid = Uuid::from_u128(0x5354_454c_0000_0000_0000_0000_0000_0001);

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let mut input = Input::new(data);
    let ours = match input.byte() % 3 {
        0 => None,
        1 => Some(Uuid::from_u128(1)),
        _ => Some(Uuid::from_u128(2)),
    };
    let Ok(message) = serde_json::from_slice::<GossipMessage>(input.rest()) else {
        return;
    };
    let json = serde_json::to_value(&message).expect("a parsed message serialises");
    let again: GossipMessage = serde_json::from_value(json.clone()).expect("and parses again");
    assert_eq!(serde_json::to_value(&again).expect("serialises"), json);

    let table = MemberTable::new(GossipConfig::default(), ME);
    // The clock check uses the real clock; the merge runs whatever it says, as a test of the
    // merge with any content.
    let checked = table.check(&message, ours);
    if let Err(refused) = &checked {
        assert!(!refused.to_string().is_empty());
    }
    table.merge(&message, ours);
    table.merge(&message, ours);
    for member in table.members() {
        assert_ne!(member.instance_id, ME);
    }
});
