//! A hybrid logical clock: physical milliseconds plus a logical counter. It never goes
//! backwards, stays close to wall time, and orders events across banks the way Lamport clocks
//! do once the interbank messages carry stamps. The caller passes the wall time in.

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

    /// The stamp of receiving a message stamped `remote`: past both the local clock and it.
    pub fn observe(&mut self, remote: Stamp, wall_ms: u64) -> Stamp {
        let latest = self.last.max(remote);
        self.last = if wall_ms > latest.physical_ms {
            Stamp {
                physical_ms: wall_ms,
                logical: 0,
            }
        } else {
            self.bump(latest)
        };
        self.last
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
            None => Stamp {
                physical_ms: stamp.physical_ms + 1,
                logical: 0,
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
        let stamp = clock.observe(remote, 120);
        assert_eq!(
            stamp,
            Stamp {
                physical_ms: 500,
                logical: 8
            }
        );
        assert!(clock.tick(130) > stamp);
        assert_eq!(
            clock.observe(remote, 900),
            Stamp {
                physical_ms: 900,
                logical: 0
            }
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
}
