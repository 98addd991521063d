//! A hybrid logical clock: physical milliseconds plus a logical counter. It never goes
//! backwards, stays close to wall time, and orders events across banks the way Lamport clocks
//! do once the interbank messages carry stamps. The caller passes the wall time in.
//!
//! A stamp received from elsewhere is taken only when it is at most `max_ahead_ms` ahead of the
//! local wall time ([`Hlc::observe`]): one stamp from the far future would otherwise move this
//! clock (and through it every clock it talks to) there for good.

use std::fmt;

/// One reading of the clock. Ordered by physical time, then by the logical counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    pub physical_ms: u64,
    pub logical: u32,
}

impl Stamp {
    /// Parses the `physical.logical` text form that [`Stamp`]'s `Display` writes.
    pub fn parse(text: &str) -> Option<Stamp> {
        let (physical, logical) = text.split_once('.')?;
        Some(Stamp {
            physical_ms: physical.parse().ok()?,
            logical: logical.parse().ok()?,
        })
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// A received stamp further ahead of the local wall time than allowed; the clock did not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooFarAhead {
    /// How far ahead of the local wall time the stamp was.
    pub ahead_ms: u64,
}

impl fmt::Display for TooFarAhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a clock {} ms ahead of this one's wall time",
            self.ahead_ms
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hlc {
    last: Stamp,
}

impl Hlc {
    /// A clock that will never issue a stamp at or before `floor` (e.g. the last stamp on disk).
    pub fn starting_after(floor: Stamp) -> Hlc {
        Hlc { last: floor }
    }

    /// The stamp of a local event at wall time `wall_ms`.
    pub fn tick(&mut self, wall_ms: u64) -> Stamp {
        self.last = if wall_ms > self.last.physical_ms {
            Stamp {
                physical_ms: wall_ms,
                logical: 0,
            }
        } else {
            self.bump(self.last)
        };
        self.last
    }

    /// The stamp of receiving a message stamped `remote`: past both the local clock and it; or,
    /// when `remote` is more than `max_ahead_ms` ahead of `wall_ms`, a refusal that changes
    /// nothing.
    pub fn observe(
        &mut self,
        remote: Stamp,
        wall_ms: u64,
        max_ahead_ms: u64,
    ) -> Result<Stamp, TooFarAhead> {
        let ahead_ms = remote.physical_ms.saturating_sub(wall_ms);
        if ahead_ms > max_ahead_ms {
            return Err(TooFarAhead { ahead_ms });
        }
        let latest = self.last.max(remote);
        self.last = if wall_ms > latest.physical_ms {
            Stamp {
                physical_ms: wall_ms,
                logical: 0,
            }
        } else {
            self.bump(latest)
        };
        Ok(self.last)
    }

    pub fn last(&self) -> Stamp {
        self.last
    }

    fn bump(&self, stamp: Stamp) -> Stamp {
        match stamp.logical.checked_add(1) {
            Some(logical) => Stamp {
                physical_ms: stamp.physical_ms,
                logical,
            },
            // Four billion events in one millisecond: move physical time on instead of wrapping.
            None => match stamp.physical_ms.checked_add(1) {
                Some(physical_ms) => Stamp {
                    physical_ms,
                    logical: 0,
                },
                // The last stamp there is, 585 million years on: only a corrupt stamp gets here.
                // Stay on it rather than wrap round to zero or go back to `MAX.0`.
                None => stamp,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let mut clock = Hlc::default();
        let walls = [100, 100, 99, 50, 101, 101, 200, 150];
        let mut previous = Stamp::default();
        for wall in walls {
            let stamp = clock.tick(wall);
            assert!(stamp > previous, "{stamp} after {previous}");
            previous = stamp;
        }
        assert_eq!(
            previous,
            Stamp {
                physical_ms: 200,
                logical: 1
            }
        );
    }

    #[test]
    fn observing_moves_past_the_sender() {
        let mut clock = Hlc::default();
        clock.tick(100);
        let remote = Stamp {
            physical_ms: 500,
            logical: 7,
        };
        let stamp = clock.observe(remote, 120, 1_000).unwrap();
        assert_eq!(
            stamp,
            Stamp {
                physical_ms: 500,
                logical: 8
            }
        );
        assert!(clock.tick(130) > stamp);
        assert_eq!(
            clock.observe(remote, 900, 1_000),
            Ok(Stamp {
                physical_ms: 900,
                logical: 0
            })
        );
    }

    #[test]
    fn a_stamp_too_far_ahead_is_refused_and_moves_nothing() {
        let mut clock = Hlc::default();
        let before = clock.tick(1_000);
        let future = Stamp {
            physical_ms: 200_000_000_000_000,
            logical: 0,
        };
        assert_eq!(
            clock.observe(future, 1_000, 30_000),
            Err(TooFarAhead {
                ahead_ms: 200_000_000_000_000 - 1_000
            })
        );
        assert_eq!(clock.last(), before);
        let edge = Stamp {
            physical_ms: 31_000,
            logical: 0,
        };
        assert_eq!(
            clock.observe(edge, 1_000, 30_000),
            Ok(Stamp {
                physical_ms: 31_000,
                logical: 1
            })
        );
        let end = Stamp {
            physical_ms: u64::MAX,
            logical: u32::MAX,
        };
        assert!(clock.observe(end, 1_000, 30_000).is_err());
        let mut stuck = Hlc::starting_after(end);
        assert_eq!(
            stuck.tick(1_000).physical_ms,
            u64::MAX,
            "saturates instead of wrapping or panicking"
        );
    }

    #[test]
    fn restarts_after_the_floor_and_parses_its_text() {
        let floor = Stamp {
            physical_ms: 1_000,
            logical: 3,
        };
        let mut clock = Hlc::starting_after(floor);
        assert_eq!(
            clock.tick(10),
            Stamp {
                physical_ms: 1_000,
                logical: 4
            }
        );
        assert_eq!(Stamp::parse("1000.4"), Some(clock.last()));
        assert_eq!(Stamp::parse("1000"), None);
        assert_eq!(clock.last().to_string(), "1000.4");
    }

    #[test]
    fn the_last_stamp_there_is_does_not_go_backwards() {
        // Found by the fuzzer: bumping the largest stamp overflowed (a panic in debug builds,
        // zero in release); saturating only the physical part went back from `MAX.MAX` to `MAX.0`.
        let top = Stamp {
            physical_ms: u64::MAX,
            logical: u32::MAX,
        };
        let mut clock = Hlc::starting_after(top);
        assert_eq!(clock.tick(20), top);
        assert_eq!(clock.observe(top, u64::MAX, 0), Ok(top));
        assert_eq!(clock.last(), top);
        let below = Stamp {
            physical_ms: u64::MAX - 1,
            logical: u32::MAX,
        };
        assert_eq!(
            Hlc::starting_after(below).tick(10),
            Stamp {
                physical_ms: u64::MAX,
                logical: 0
            }
        );
    }
}
