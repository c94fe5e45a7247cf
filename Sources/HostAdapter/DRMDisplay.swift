import CDRM
import DevicePorts
import LoopCore
import Glibc
import SystemCalls

/// A display driven through DRM/KMS (libdrm): a connected connector (the first, or the one
/// named), its preferred mode (or the one asked for), a CRTC for it, and two dumb buffers
/// flipped on vblank.
///
/// Takes DRM master (refused while another program holds it), keeps what the CRTC showed before
/// and gives it back on ``restore()`` (and in `deinit`). Page flips are requested with an event
/// and never waited for: the event is read from ``descriptor`` when it is readable.
public final class DRMDisplay: DisplayPort {
    public let path: String
    /// The connector's name as the kernel's tools print it, such as `Virtual-1` or `HDMI-A-1`.
    public let connectorName: String
    public let mode: DisplayMode
    public let driver: String
    public let descriptor: Int32
    private let connectorID: UInt32
    private let crtcID: UInt32
    private var modeInfo: drmModeModeInfo
    /// What the CRTC scanned out before we took it.
    private let previous: (framebuffer: UInt32, x: UInt32, y: UInt32, mode: drmModeModeInfo?)
    private struct Buffer { var handle: UInt32; var pitch: Int; var size: Int; var map: UnsafeMutableRawPointer; var framebuffer: UInt32 }
    private var buffers: [Buffer] = []
    /// The buffer on screen (index into `buffers`), once the CRTC is ours.
    private var front: Int?
    private var pending = false
    private var waiting: (pixels: [UInt32], width: Int, height: Int)?
    /// What each buffer lacks of the newest frame: a frame copies only that.
    private var stale = StaleRegions()
    private var copied = 0
    /// Whether the driver takes drmModeDirtyFB (nil until asked once): drivers that scan out
    /// through a shadow or over a bus need it to see what changed; the others say ENOSYS.
    private var dirtyFB: Bool?
    private var restored = false
    private var counts = (presented: 0, flips: 0, superseded: 0)
    /// The plane scanning our buffers out (the CRTC's primary plane), once the CRTC is set.
    private var plane: UInt32 = 0
    /// Where DRM events are read (a flip's is 32 bytes); kept, as flips come every frame.
    private var events = [UInt8](repeating: 0, count: 1024)

    /// The connected connectors of a card, by name (for `auto`: is anything attached?).
    /// `probe: false` asks the kernel's last known state (no detection cycle: cheap enough to
    /// ask every second while no screen is driven).
    public static func connectedConnectors(path: String, probe: Bool = true) -> [String] {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        guard let resources = drmModeGetResources(fd) else { return [] }
        defer { drmModeFreeResources(resources) }
        return (0..<Int(resources.pointee.count_connectors)).compactMap { i in
            let id = resources.pointee.connectors[i]
            guard let connector = probe ? drmModeGetConnector(fd, id) : drmModeGetConnectorCurrent(fd, id) else { return nil }
            defer { drmModeFreeConnector(connector) }
            let c = connector.pointee
            return c.connection == DRM_MODE_CONNECTED && (c.count_modes > 0 || !probe) ? name(c) : nil
        }
    }

    private static func name(_ c: drmModeConnector) -> String {
        (drmModeGetConnectorTypeName(c.connector_type).map { String(cString: $0) } ?? "Unknown") + "-\(c.connector_type_id)"
    }

    /// Open `path` and choose a connector (`connector`, or the first connected) and a mode
    /// (`mode` as `WxH[@Hz]`, or the connector's preferred one).
    public init(path: String = "/dev/dri/card0", connector wanted: String? = nil, mode wantedMode: String? = nil) throws(DeviceError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw DeviceError(device: path, errno: errno, action: "open the DRM device") }
        var ok = false
        defer { if !ok { close(fd) } }
        if let version = drmGetVersion(fd) {
            driver = String(cString: version.pointee.name)
            drmFreeVersion(version)
        } else {
            driver = "?"
        }
        let wantedSize = try wantedMode.map { text throws(DeviceError) in
            guard let size = DisplayMode.parse(text) else {
                throw DeviceError(device: path, message: "--mode \(text) is not WIDTHxHEIGHT or WIDTHxHEIGHT@HZ", hint: "such as 800x480 or 1920x1080@60")
            }
            return size
        }
        guard let resources = drmModeGetResources(fd) else {
            throw DeviceError(device: path, errno: errno, action: "read the DRM resources (is this a KMS device?)")
        }
        defer { drmModeFreeResources(resources) }
        let r = resources.pointee
        var found: (connector: UInt32, crtc: UInt32, mode: drmModeModeInfo, name: String)?
        var connected: [String] = []
        for i in 0..<Int(r.count_connectors) {
            guard let connector = drmModeGetConnector(fd, r.connectors[i]) else { continue }
            defer { drmModeFreeConnector(connector) }
            let c = connector.pointee
            guard c.connection == DRM_MODE_CONNECTED, c.count_modes > 0 else { continue }
            let name = Self.name(c)
            connected.append(name)
            if let wanted, wanted != name { continue }
            let modes = UnsafeBufferPointer(start: c.modes, count: Int(c.count_modes))
            let chosen: drmModeModeInfo
            if let size = wantedSize {
                guard let m = modes.first(where: { m in Int(m.hdisplay) == size.width && Int(m.vdisplay) == size.height
                                                   && (size.refresh.map { Int(m.vrefresh) == $0 } ?? true) }) else {
                    let offered = Set(modes.map { "\($0.hdisplay)x\($0.vdisplay)@\($0.vrefresh)" }).sorted()
                    throw DeviceError(device: path, message: "\(name) has no mode \(wantedMode!)", hint: "it offers \(offered.joined(separator: ", "))")
                }
                chosen = m
            } else {
                chosen = modes.first { $0.type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0 } ?? modes[0]
            }
            guard let crtc = Self.crtc(for: c, fd: fd, resources: r) else { continue }
            found = (c.connector_id, crtc, chosen, name)
            break
        }
        guard let found else {
            if let wanted {
                throw DeviceError(device: path, message: "no connected connector \(wanted)",
                                  hint: connected.isEmpty ? "nothing is attached" : "connected: \(connected.joined(separator: ", "))")
            }
            throw DeviceError(device: path, message: "no connected connector with a mode and a CRTC", hint: "is a display attached?")
        }
        // DRM master: the first opener is made master; another program's master refuses us.
        if drmSetMaster(fd) != 0 && drmIsMaster(fd) == 0 {
            throw DeviceError(device: path, errno: errno, action: "become DRM master (another program drives this display; stop it, or run with --display none)")
        }
        if let crtc = drmModeGetCrtc(fd, found.crtc) {
            let c = crtc.pointee
            previous = (c.buffer_id, c.x, c.y, c.mode_valid != 0 ? c.mode : nil)
            drmModeFreeCrtc(crtc)
        } else {
            previous = (0, 0, 0, nil)
        }
        // Every plane listed, the primary too, so the one scanning out can be named in the graph.
        _ = drmSetClientCap(fd, UInt64(DRM_CLIENT_CAP_UNIVERSAL_PLANES), 1)
        descriptor = fd
        connectorID = found.connector
        crtcID = found.crtc
        modeInfo = found.mode
        connectorName = found.name
        let modeName = withUnsafeBytes(of: found.mode.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        mode = DisplayMode(width: Int(found.mode.hdisplay), height: Int(found.mode.vdisplay), refresh: Int(found.mode.vrefresh), name: modeName)
        ok = true
    }

    /// The CRTC the connector's encoder drives now, else the first one an encoder can drive.
    private static func crtc(for c: drmModeConnector, fd: Int32, resources r: drmModeRes) -> UInt32? {
        if c.encoder_id != 0, let encoder = drmModeGetEncoder(fd, c.encoder_id) {
            defer { drmModeFreeEncoder(encoder) }
            if encoder.pointee.crtc_id != 0 { return encoder.pointee.crtc_id }
        }
        for e in 0..<Int(c.count_encoders) {
            guard let encoder = drmModeGetEncoder(fd, c.encoders[e]) else { continue }
            let possible = encoder.pointee.possible_crtcs
            drmModeFreeEncoder(encoder)
            if let index = (0..<Int(r.count_crtcs)).first(where: { possible & (1 << $0) != 0 }) { return r.crtcs[index] }
        }
        return nil
    }

    deinit {
        restore()
        close(descriptor)
    }

    public var state: DisplayState {
        DisplayState(device: path, driver: driver, connector: connectorName, crtc: crtcID, mode: mode,
                     framebuffer: front.map { buffers[$0].framebuffer } ?? 0, presented: counts.presented, flips: counts.flips,
                     superseded: counts.superseded, flipPending: pending, copied: copied, plane: plane)
    }

    public func present(pixels: [UInt32], width: Int, height: Int, damage: [PixelRect]?) throws(DeviceError) {
        guard !restored else { return }
        // Cheap (no probe): the kernel's own view of the connector, updated on hotplug.
        if let connector = drmModeGetConnectorCurrent(descriptor, connectorID) {
            let connection = connector.pointee.connection
            drmModeFreeConnector(connector)
            guard connection == DRM_MODE_CONNECTED else {
                throw DeviceError(device: path, message: "\(connectorName) was disconnected", hint: "the panel goes on as the PNG until a display is attached")
            }
        }
        counts.presented += 1
        stale.add(damage)
        if pending {
            if waiting != nil { counts.superseded += 1 }
            waiting = (pixels, width, height)
            return
        }
        try show(pixels, width: width, height: height)
    }

    public func service() throws(DeviceError) {
        // struct drm_event { u32 type; u32 length; }, then the event; a flip's is type 2.
        while true {
            let n: Int
            switch events.withUnsafeMutableBytes({ b in Syscall.retrying { read(descriptor, b.baseAddress, b.count) } }) {
            case .success(let got) where got > 0: n = got
            case .success: return
            case .failure(let e) where e.wouldBlock: return
            case .failure(let e): throw DeviceError(device: path, errno: e.code, action: "read DRM events")
            }
            var offset = 0
            while offset + 8 <= n {
                let type = events.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
                let length = Int(events.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) })
                if type == 0x02 /* DRM_EVENT_FLIP_COMPLETE */, pending {
                    pending = false
                    counts.flips += 1
                    front = front.map { 1 - $0 }
                }
                offset += max(length, 8)
            }
            if !pending, let next = waiting {
                waiting = nil
                try show(next.pixels, width: next.width, height: next.height)
            }
        }
    }

    public func restore() {
        guard !restored else { return }
        restored = true
        if front != nil {
            if let mode = previous.mode, previous.framebuffer != 0 {
                var connector = connectorID
                var info = mode
                _ = drmModeSetCrtc(descriptor, crtcID, previous.framebuffer, previous.x, previous.y, &connector, 1, &info)
            } else {
                // It was off: off again.
                _ = drmModeSetCrtc(descriptor, crtcID, 0, 0, 0, nil, 0, nil)
            }
        }
        for b in buffers {
            munmap(b.map, b.size)
            drmModeRmFB(descriptor, b.framebuffer)
            _ = worldos_drm_destroy_dumb(descriptor, b.handle)
        }
        buffers = []
        front = nil
        _ = drmDropMaster(descriptor)
    }

    /// Draw into the buffer not on screen and flip to it (the first time: set the CRTC to it).
    private func show(_ pixels: [UInt32], width: Int, height: Int) throws(DeviceError) {
        try makeBuffers()
        let target = front.map { 1 - $0 } ?? 0
        let b = buffers[target]
        let rows = min(height, mode.height), columns = min(width, mode.width)
        let regions = (stale.take(target) ?? [PixelRect(x: 0, y: 0, width: columns, height: rows)])
            .map { $0.intersection(PixelRect(x: 0, y: 0, width: columns, height: rows)) }.filter { !$0.isEmpty }
        copied = 0
        pixels.withUnsafeBufferPointer { p in
            for r in regions {
                for y in r.y..<r.maxY {
                    let destination = (b.map + y * b.pitch).assumingMemoryBound(to: UInt32.self) + r.x
                    destination.update(from: p.baseAddress! + y * width + r.x, count: r.width)
                }
                copied += r.area
            }
        }
        if dirtyFB != false, !regions.isEmpty {
            var clips = regions.map { drmModeClip(x1: UInt16(clamping: $0.x), y1: UInt16(clamping: $0.y), x2: UInt16(clamping: $0.maxX), y2: UInt16(clamping: $0.maxY)) }
            let status = drmModeDirtyFB(descriptor, b.framebuffer, &clips, UInt32(clips.count))
            dirtyFB = !(status == -ENOSYS || status == -EOPNOTSUPP || status == -EINVAL)
        }
        if front == nil {
            var connector = connectorID
            guard drmModeSetCrtc(descriptor, crtcID, b.framebuffer, 0, 0, &connector, 1, &modeInfo) == 0 else {
                throw DeviceError(device: path, errno: errno, action: "set the CRTC (is another program the DRM master?)")
            }
            front = target
            plane = Self.plane(descriptor, crtc: crtcID, framebuffer: b.framebuffer)
            return
        }
        guard drmModePageFlip(descriptor, crtcID, b.framebuffer, UInt32(DRM_MODE_PAGE_FLIP_EVENT), nil) == 0 else {
            throw DeviceError(device: path, errno: errno, action: "request a page flip")
        }
        pending = true
    }

    /// The plane on `crtc` showing `framebuffer` (0: none found).
    private static func plane(_ fd: Int32, crtc: UInt32, framebuffer: UInt32) -> UInt32 {
        guard let resources = drmModeGetPlaneResources(fd) else { return 0 }
        defer { drmModeFreePlaneResources(resources) }
        for i in 0..<Int(resources.pointee.count_planes) {
            guard let p = drmModeGetPlane(fd, resources.pointee.planes[i]) else { continue }
            defer { drmModeFreePlane(p) }
            if p.pointee.crtc_id == crtc && p.pointee.fb_id == framebuffer { return p.pointee.plane_id }
        }
        return 0
    }

    private func makeBuffers() throws(DeviceError) {
        while buffers.count < 2 {
            var handle: UInt32 = 0, pitch: UInt32 = 0, size: UInt64 = 0, offset: UInt64 = 0
            guard worldos_drm_create_dumb(descriptor, UInt32(mode.width), UInt32(mode.height), 32, &handle, &pitch, &size) == 0 else {
                throw DeviceError(device: path, errno: errno, action: "create a dumb buffer")
            }
            guard worldos_drm_map_dumb(descriptor, handle, &offset) == 0,
                  let map = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, off_t(offset)), map != MAP_FAILED else {
                let e = errno
                _ = worldos_drm_destroy_dumb(descriptor, handle)
                throw DeviceError(device: path, errno: e, action: "map the dumb buffer")
            }
            memset(map, 0, Int(size))
            var framebuffer: UInt32 = 0
            guard drmModeAddFB(descriptor, UInt32(mode.width), UInt32(mode.height), 24, 32, pitch, handle, &framebuffer) == 0 else {
                let e = errno
                munmap(map, Int(size))
                _ = worldos_drm_destroy_dumb(descriptor, handle)
                throw DeviceError(device: path, errno: e, action: "add the framebuffer")
            }
            buffers.append(Buffer(handle: handle, pitch: Int(pitch), size: Int(size), map: map, framebuffer: framebuffer))
        }
    }
}
