//! Desired state versus the kernel: a pure diff (STYLE §4).
//!
//! [`reconcile`] keeps what is already right, replaces what differs, deletes what is ours
//! and no longer wanted, and installs what is missing, like BIRD's `krt_got_route` +
//! `krt_prune`. Unchanged kernel objects are never rewritten, so a reconcile of a system
//! that is in sync yields no operation at all.

use std::collections::BTreeMap;

use crate::kernel::{Key, Object};

/// One change to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create an object that does not exist.
    Add(Object),
    /// Overwrite an object with the same key (`NLM_F_REPLACE`): atomic for nexthop
    /// groups and routes, so traffic never sees a gap.
    Replace(Object),
    /// Remove one of our objects.
    Delete(Object),
}

impl Op {
    pub fn object(&self) -> &Object {
        match self {
            Op::Add(o) | Op::Replace(o) | Op::Delete(o) => o,
        }
    }
}

/// Operations that turn `current` (our objects as dumped) into `desired`.
///
/// Order: creations and replacements in dependency order (nexthops, groups, routes,
/// rules), then deletions in reverse dependency order (rules, routes, groups, nexthops).
/// Rules are identified by all their fields, so a "changed" rule is an add and a delete,
/// and the add comes first: a packet never finds neither.
pub fn reconcile(desired: &[Object], current: &[Object]) -> Vec<Op> {
    let have: BTreeMap<Key, &Object> = current.iter().map(|o| (o.key(), o)).collect();
    let want: BTreeMap<Key, &Object> = desired.iter().map(|o| (o.key(), o)).collect();

    let mut upserts: Vec<Op> = Vec::new();
    for (key, obj) in &want {
        match have.get(key) {
            Some(existing) if *existing == *obj => {}
            Some(_) => upserts.push(Op::Replace((*obj).clone())),
            None => upserts.push(Op::Add((*obj).clone())),
        }
    }
    let mut deletes: Vec<Op> = have
        .iter()
        .filter(|(key, _)| !want.contains_key(key))
        .map(|(_, obj)| Op::Delete((*obj).clone()))
        .collect();

    upserts.sort_by_key(|op| op.object().create_rank());
    deletes.sort_by_key(|op| std::cmp::Reverse(op.object().create_rank()));
    upserts.extend(deletes);
    upserts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::*;
    use crate::testutil::{nh, rule};

    fn group(id: u32, members: &[(u32, u16)]) -> Object {
        Object::Nexthop(Nexthop {
            id,
            family: Family::V4,
            kind: NexthopKind::Group(
                members
                    .iter()
                    .map(|&(id, weight)| GroupMember { id, weight })
                    .collect(),
            ),
        })
    }

    fn default_via(table: u32, target: RouteTarget) -> Object {
        Object::Route(Route {
            family: Family::V4,
            table,
            dst: Family::V4.any(),
            dst_len: 0,
            metric: 0,
            target,
        })
    }

    #[test]
    fn in_sync_means_no_ops() {
        let objs = vec![
            nh(1, 1),
            group(10, &[(1, 1)]),
            default_via(10, RouteTarget::Nexthop(10)),
        ];
        assert!(reconcile(&objs, &objs).is_empty());
        // Order of the dump does not matter.
        let mut reversed = objs.clone();
        reversed.reverse();
        assert!(reconcile(&objs, &reversed).is_empty());
    }

    #[test]
    fn creates_in_dependency_order_and_deletes_in_reverse() {
        let desired = vec![
            rule(1900, 10),
            default_via(10, RouteTarget::Nexthop(10)),
            group(10, &[(1, 3), (2, 1)]),
            nh(2, 2),
            nh(1, 1),
        ];
        let ops = reconcile(&desired, &[]);
        let ranks: Vec<u8> = ops.iter().map(|o| o.object().create_rank()).collect();
        assert_eq!(ranks, vec![0, 0, 1, 2, 3]);

        let ops = reconcile(&[], &desired);
        assert!(ops.iter().all(|o| matches!(o, Op::Delete(_))));
        let ranks: Vec<u8> = ops.iter().map(|o| o.object().create_rank()).collect();
        assert_eq!(ranks, vec![3, 2, 1, 0, 0]);
    }

    #[test]
    fn weight_change_replaces_only_the_group() {
        let before = vec![
            nh(1, 1),
            nh(2, 2),
            group(10, &[(1, 3), (2, 1)]),
            default_via(10, RouteTarget::Nexthop(10)),
        ];
        let mut after = before.clone();
        after[2] = group(10, &[(1, 1), (2, 1)]);
        assert_eq!(
            reconcile(&after, &before),
            vec![Op::Replace(group(10, &[(1, 1), (2, 1)]))]
        );
    }

    #[test]
    fn changed_rule_is_added_before_the_old_one_goes() {
        let ops = reconcile(&[rule(1900, 11)], &[rule(1900, 10)]);
        assert_eq!(
            ops,
            vec![Op::Add(rule(1900, 11)), Op::Delete(rule(1900, 10))]
        );
    }

    #[test]
    fn missing_nexthop_deleted_by_kernel_is_recreated() {
        // The kernel deletes a nexthop whose link lost carrier (and drops it from groups).
        let desired = vec![nh(1, 1), nh(2, 2), group(10, &[(1, 1), (2, 1)])];
        let current = vec![nh(2, 2), group(10, &[(2, 1)])];
        assert_eq!(
            reconcile(&desired, &current),
            vec![Op::Add(nh(1, 1)), Op::Replace(group(10, &[(1, 1), (2, 1)]))]
        );
    }
}
