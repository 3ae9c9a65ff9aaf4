/// How many units each job of a run may hold while other jobs want units:
/// its weight's share of the ring (rounded up) when two or more jobs have
/// work, and never more than its own `maxUnits`. A job that arrives while
/// another holds most of the ring gets the units the other gives back until
/// both are at their shares, so no job waits behind another's head start.
struct UnitShares {
    /// Units of the run's ring.
    let units: Int
    /// The sum of the weights of the jobs that want units now; 0 when fewer than two do.
    let contendingWeight: Int
    /// Whether any job is held below what it could take (a share or a cap).
    let limitsAnyJob: Bool
    /// When the shares were taken (the jobs' caps grow with time).
    let now: ContinuousClock.Instant

    /// The shares for `jobs` at `now`: the jobs that want units are those
    /// not cancelled nor paused with work left.
    init(units: Int, jobs: [JobState], now: ContinuousClock.Instant = .now) {
        self.units = units
        self.now = now
        var weight = 0
        var contenders = 0
        var capped = false
        for j in jobs where j.wantsUnits {
            contenders += 1
            weight += max(1, j.job.weight)
            capped = capped || (j.unitCap(at: now) ?? Int.max) < units
        }
        contendingWeight = contenders >= 2 ? weight : 0
        limitsAnyJob = capped || contenders >= 2
    }

    /// The units `j` may hold while others want some (at least one).
    func limit(for j: JobState) -> Int {
        let cap = j.unitCap(at: now) ?? Int.max
        guard contendingWeight > 0 else { return cap }
        let share = (units * max(1, j.job.weight) + contendingWeight - 1) / contendingWeight
        return min(cap, max(1, share))
    }
}

extension UnitShares {
    /// The units paused job `index` may keep holding (finished chunks its
    /// reader has not taken yet) while other jobs want units: its share of
    /// the ring as if it contended too. Int.max when no other job wants
    /// units, so a stalled reader alone keeps what it has. A reader that
    /// stops must not keep the ring from the others.
    static func holdLimit(for index: Int, jobs: [JobState], units: Int) -> Int {
        var weight = 0
        for (i, j) in jobs.enumerated() where i != index && j.wantsUnits { weight += max(1, j.job.weight) }
        guard weight > 0 else { return Int.max }
        let own = max(1, jobs[index].job.weight)
        return max(1, (units * own + weight + own - 1) / (weight + own))
    }
}

extension JobState {
    /// `maxUnits` at `now`, doubled once per `maxUnitsDoublesEvery` since
    /// the job's first unit; nil: no cap.
    func unitCap(at now: ContinuousClock.Instant) -> Int? {
        guard let cap = job.maxUnits else { return nil }
        guard let every = job.maxUnitsDoublesEvery, every > .zero, let first = firstUnitAt else { return cap }
        let doublings = Int(min(30, max(0, (now - first) / every)))
        return cap.multipliedReportingOverflow(by: 1 << doublings).overflow ? Int.max : cap << doublings
    }

    /// Whether it could take a unit now: not cancelled nor paused, with files
    /// or chunks left to submit (files not opened yet count).
    var wantsUnits: Bool {
        guard hasFilesLeft else { return false }
        let currentDone = current.map { $0.nextChunk >= $0.chunks } ?? true
        let nothingQueued = packQueue.isEmpty && unpacked.isEmpty && nextPath >= job.paths.count
        return !(currentDone && nothingQueued) && !isPaused
    }
}
