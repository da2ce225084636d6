//! The members of a bubble, in a slab.
//!
//! A member's id is its slot and the slot's generation, so finding a member (on every block
//! and wake) is an index rather than a hash, and the slots of finished members are reused. An
//! id kept after its member left (by a waker, a timer) finds nothing, rather than the member
//! that took the slot next.

use super::{Member, MemberId};

#[derive(Default)]
pub(super) struct Members {
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    member: Option<Member>,
}

/// The slot of `id`, as an index.
#[inline]
pub(super) fn slot_of(id: MemberId) -> usize {
    (id & u64::from(u32::MAX)) as usize
}

fn id_of(slot: u32, generation: u32) -> MemberId {
    (u64::from(generation) << 32) | u64::from(slot)
}

impl Members {
    /// Adds `member`; returns its id.
    pub(super) fn insert(&mut self, member: Member) -> MemberId {
        self.len += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 live members")
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.member = Some(member);
        id_of(slot, entry.generation)
    }

    #[inline]
    fn slot(&self, id: MemberId) -> Option<&Slot> {
        self.slots.get(slot_of(id)).filter(|slot| u64::from(slot.generation) == id >> 32)
    }

    #[inline]
    pub(super) fn get(&self, id: &MemberId) -> Option<&Member> {
        self.slot(*id)?.member.as_ref()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, id: &MemberId) -> Option<&mut Member> {
        let slot = self.slots.get_mut(slot_of(*id)).filter(|slot| u64::from(slot.generation) == *id >> 32)?;
        slot.member.as_mut()
    }

    #[cfg(gonext_std_time)]
    pub(super) fn contains_key(&self, id: &MemberId) -> bool {
        self.get(id).is_some()
    }

    /// Removes member `id`; its slot's next member gets a new generation.
    pub(super) fn remove(&mut self, id: &MemberId) -> Option<Member> {
        let index = slot_of(*id);
        let slot = self.slots.get_mut(index).filter(|slot| u64::from(slot.generation) == *id >> 32)?;
        let member = slot.member.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.len -= 1;
        Some(member)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every member with its id, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (MemberId, &Member)> {
        self.slots.iter().zip(0u32..).filter_map(|(slot, index)| {
            slot.member.as_ref().map(|member| (id_of(index, slot.generation), member))
        })
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.iter().map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::bubble::{Kind, State};

    fn member(name: &str) -> Member {
        Member {
            name: name.to_owned(),
            number: 0,
            spawned_at: std::panic::Location::caller(),
            kind: Kind::Task,
            #[cfg(gonext_std_time)]
            adopted: false,
            state: State::Running,
            notified: false,
        }
    }

    #[test]
    fn an_id_kept_after_its_member_left_does_not_find_the_next_member_of_its_slot() {
        let mut members = Members::default();
        let first = members.insert(member("first"));
        assert_eq!(members.remove(&first).map(|m| m.name), Some("first".to_owned()));
        let second = members.insert(member("second"));
        assert_eq!(slot_of(first), slot_of(second), "the slot is reused");
        assert!(members.get(&first).is_none());
        assert!(members.remove(&first).is_none());
        assert_eq!(members.get(&second).map(|m| m.name.as_str()), Some("second"));
        assert_eq!(members.keys().collect::<Vec<_>>(), vec![second]);
        assert!(!members.is_empty());
        members.remove(&second);
        assert!(members.is_empty());
    }
}
