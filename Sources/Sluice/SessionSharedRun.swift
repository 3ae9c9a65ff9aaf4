import SluiceCore

/// What a request gets when it joins a shared run: the scheduler of the
/// session's one engine, its tenant number, and the entry of the backend's
/// scan-table directory its table goes in (-1 for a request without one).
struct TenantPlace {
    let engine: Engine
    let scanner: ChunkScheduler
    /// The session's recently built scan tables.
    let tables: RecentTables
    let tenant: UInt32
    let tableIndex: Int
}

/// The requests of a session that run together on one engine, each a
/// tenant of its ring (`ChunkScheduler.run(jobs:admitting:)`): a request
/// joins as soon as a tenant number (and, for a scan, a directory entry) is
/// free, its slots carry its tenant, tenant checks confine them to its own
/// buffers and result areas, and its table is bound to it. So one request's
/// fault, cancel or slow reader never touches another's results.
final class SharedRun {
    /// Tenants a shared run has at most at once.
    static let maxTenants = 64
    /// Requests one run of the scheduler takes in before it lets itself
    /// end (the next run takes the rest): a run's turn looks at every job
    /// it ever took, so a session that is never idle must not run one for ever.
    static let requestsPerRun = 256

    let engine: Engine
    let scanner: ChunkScheduler
    let tables = RecentTables()
    private var freeTenants: [UInt32]
    private var freeTables: [Int]
    /// Requests waiting for a tenant or a table, in arrival order.
    private(set) var waiting: [SessionWorker.Request] = []
    /// Requests running, by tenant.
    private var active: [UInt32: (request: SessionWorker.Request, place: TenantPlace)] = [:]
    /// Requests the current run may still take in.
    private var admissionsLeft = SharedRun.requestsPerRun

    /// Units one request holds at once at first (`Session.Configuration.slotsPerRequest`).
    let unitsPerRequest: Int?
    /// How often a request's cap doubles: requests that a client started
    /// together reach the server within a few ms of each other, and by then
    /// the first holds a quarter of the ring, not all of it; alone, it has the
    /// whole ring after two doublings (a GPU worker block runs one slot, so
    /// a quarter of the ring is a quarter of the rate).
    static let requestCapDoublesEvery: Duration = .milliseconds(4)

    /// The units a request may hold of a ring of `units`: `configured`
    /// clamped to the ring (0: no cap), or by default a quarter of the ring,
    /// at least 8 (a lone request still keeps reads and work overlapped).
    static func unitsPerRequest(configured: Int?, units: Int) -> Int? {
        guard let configured else { return min(units, max(8, units / 4)) }
        return configured == 0 ? nil : min(units, max(1, configured))
    }

    /// Called before each run of the scheduler.
    func beginRun() { admissionsLeft = SharedRun.requestsPerRun }

    /// Turns tenant checks on in the backend of `engine`'s scheduler (once per pool).
    init(engine: Engine, slotsPerRequest: Int?) throws(PipelineError) {
        let scanner = try engine.scanner()
        try scanner.enableTenantChecks(tenants: SharedRun.maxTenants)
        self.engine = engine
        self.scanner = scanner
        unitsPerRequest = SharedRun.unitsPerRequest(configured: slotsPerRequest, units: scanner.units)
        freeTenants = (0..<UInt32(SharedRun.maxTenants)).reversed()
        freeTables = (0..<min(SharedRun.maxTenants, scanner.backend.scanDirectoryEntries)).reversed()
    }

    /// Jobs for the requests waiting (`arrived` last) that a tenant and
    /// table are free for, in arrival order; a request that cannot start
    /// (bad literals, no such path) ends at once with its error.
    func admit(_ arrived: [SessionWorker.Request]) -> [ChunkScheduler.Job] {
        waiting += arrived
        // A run whose every request waits for its reader cannot end soon:
        // the quota must not keep new requests out behind it.
        if admissionsLeft == 0, !waiting.isEmpty, active.values.allSatisfy({ $0.request.isPaused() }) {
            admissionsLeft = SharedRun.requestsPerRun
        }
        var jobs: [ChunkScheduler.Job] = []
        while let request = waiting.first, admissionsLeft > 0, !freeTenants.isEmpty,
              !request.usesScanTable || !freeTables.isEmpty {
            waiting.removeFirst()
            admissionsLeft -= 1
            let place = TenantPlace(
                engine: engine, scanner: scanner, tables: tables, tenant: freeTenants.removeLast(),
                tableIndex: request.usesScanTable ? freeTables.removeLast() : -1)
            do throws(PipelineError) {
                var job = try request.job(place)
                job.maxUnits = unitsPerRequest
                job.maxUnitsDoublesEvery = SharedRun.requestCapDoublesEvery
                // Refused here, a bad job ends its own request, not the run.
                try ChunkRun.validate([job], chunkBytes: scanner.chunkBytes)
                let ending = job.onFinish
                job.onFinish = { [self] in
                    ending?()
                    release(place)
                    request.end(nil)
                }
                active[place.tenant] = (request, place)
                jobs.append(job)
            } catch {
                release(place)
                request.end(SluiceError(error))
            }
        }
        return jobs
    }

    /// Gives the tenant (and empties the table entry) back once its job ended.
    private func release(_ place: TenantPlace) {
        active[place.tenant] = nil
        freeTenants.append(place.tenant)
        guard place.tableIndex >= 0 else { return }
        // No slot of the job is in flight: every file of it was reported.
        try? scanner.removeScanTable(at: place.tableIndex)
        freeTables.append(place.tableIndex)
    }

    /// The requests still waiting, handed back (the run ended without them).
    func takeWaiting() -> [SessionWorker.Request] {
        defer { waiting = [] }
        return waiting
    }

    /// A run that threw: every running request ends with `error`; the
    /// waiting ones are handed back to run on whatever comes next.
    func fail(_ error: SluiceError) -> [SessionWorker.Request] {
        for (request, place) in active.values {
            release(place)
            request.end(error)
        }
        defer { waiting = [] }
        return waiting
    }
}
