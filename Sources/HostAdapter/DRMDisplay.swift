import CDRM
import DevicePorts
import Glibc
import LoopCore

/// A display driven through DRM/KMS (libdrm): the first connected connector, its preferred
/// mode, a CRTC for it, and one dumb buffer scanned out from it.
///
/// Owns the DRM file descriptor (open/close), the dumb buffer (create/destroy), its mapping
/// (mmap/munmap) and the framebuffer (drmModeAddFB/drmModeRmFB); all are released in `deinit`.
/// The CRTC shows our buffer from the first ``present(_:)`` until this object is released.
public final class DRMDisplay {
    public struct Mode: Equatable, Sendable {
        public var width: Int
        public var height: Int
        public var refresh: Int
        public var name: String
    }

    public let path: String
    /// The connector's name as the kernel's tools print it, such as `Virtual-1` or `HDMI-A-1`.
    public let connectorName: String
    public let mode: Mode
    public let driver: String
    private let fd: Int32
    private let connectorID: UInt32
    private let crtcID: UInt32
    private var modeInfo: drmModeModeInfo
    private var scanout: (handle: UInt32, pitch: Int, size: Int, map: UnsafeMutableRawPointer, framebuffer: UInt32)?
    private var crtcSet = false

    public init(path: String = "/dev/dri/card0") throws(DeviceError) {
        self.path = path
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceError(device: path, errno: errno, action: "open the DRM device") }
        var found: (UInt32, UInt32, drmModeModeInfo, String)?
        var failure = DeviceError(device: path, message: "no connected connector with a mode", hint: "is a display attached?")
        if let version = drmGetVersion(fd) {
            driver = String(cString: version.pointee.name)
            drmFreeVersion(version)
        } else {
            driver = "?"
        }
        if let resources = drmModeGetResources(fd) {
            defer { drmModeFreeResources(resources) }
            let r = resources.pointee
            for i in 0..<Int(r.count_connectors) {
                guard let connector = drmModeGetConnector(fd, r.connectors[i]) else { continue }
                defer { drmModeFreeConnector(connector) }
                let c = connector.pointee
                guard c.connection == DRM_MODE_CONNECTED, c.count_modes > 0 else { continue }
                let modes = UnsafeBufferPointer(start: c.modes, count: Int(c.count_modes))
                let mode = modes.first { $0.type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0 } ?? modes[0]
                var crtc: UInt32?
                if c.encoder_id != 0, let encoder = drmModeGetEncoder(fd, c.encoder_id) {
                    if encoder.pointee.crtc_id != 0 { crtc = encoder.pointee.crtc_id }
                    drmModeFreeEncoder(encoder)
                }
                if crtc == nil {
                    for e in 0..<Int(c.count_encoders) {
                        guard let encoder = drmModeGetEncoder(fd, c.encoders[e]) else { continue }
                        let possible = encoder.pointee.possible_crtcs
                        drmModeFreeEncoder(encoder)
                        if let index = (0..<Int(r.count_crtcs)).first(where: { possible & (1 << $0) != 0 }) {
                            crtc = r.crtcs[index]
                            break
                        }
                    }
                }
                guard let crtc else { failure = DeviceError(device: path, message: "connector \(c.connector_id) has no usable CRTC", hint: ""); continue }
                let typeName = drmModeGetConnectorTypeName(c.connector_type).map { String(cString: $0) } ?? "Unknown"
                found = (c.connector_id, crtc, mode, "\(typeName)-\(c.connector_type_id)")
                break
            }
        } else {
            failure = DeviceError(device: path, errno: errno, action: "read the DRM resources (is this a KMS device?)")
        }
        guard let (connector, crtc, info, name) = found else {
            close(fd)
            throw failure
        }
        connectorID = connector
        crtcID = crtc
        modeInfo = info
        connectorName = name
        let modeName = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        mode = Mode(width: Int(info.hdisplay), height: Int(info.vdisplay), refresh: Int(info.vrefresh), name: modeName)
    }

    deinit {
        if let s = scanout {
            munmap(s.map, s.size)
            drmModeRmFB(fd, s.framebuffer)
            _ = worldos_drm_destroy_dumb(fd, s.handle)
        }
        close(fd)
    }

    /// Copy a frame into the scanout buffer (its top-left corner; the rest stays black) and,
    /// the first time, point the CRTC at that buffer.
    public func present(_ frame: Frame) throws(DeviceError) {
        let s = try scanoutBuffer()
        let rows = min(frame.height, mode.height), columns = min(frame.width, mode.width)
        frame.pixels.withUnsafeBufferPointer { pixels in
            for y in 0..<rows {
                let destination = (s.map + y * s.pitch).assumingMemoryBound(to: UInt32.self)
                destination.update(from: pixels.baseAddress! + y * frame.width, count: columns)
            }
        }
        if !crtcSet {
            var connector = connectorID
            guard drmModeSetCrtc(fd, crtcID, s.framebuffer, 0, 0, &connector, 1, &modeInfo) == 0 else {
                throw DeviceError(device: path, errno: errno, action: "set the CRTC (is another program the DRM master?)")
            }
            crtcSet = true
        }
    }

    private func scanoutBuffer() throws(DeviceError) -> (handle: UInt32, pitch: Int, size: Int, map: UnsafeMutableRawPointer, framebuffer: UInt32) {
        if let s = scanout { return s }
        var handle: UInt32 = 0, pitch: UInt32 = 0, size: UInt64 = 0, offset: UInt64 = 0
        guard worldos_drm_create_dumb(fd, UInt32(mode.width), UInt32(mode.height), 32, &handle, &pitch, &size) == 0 else {
            throw DeviceError(device: path, errno: errno, action: "create a dumb buffer")
        }
        guard worldos_drm_map_dumb(fd, handle, &offset) == 0,
              let map = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset)), map != MAP_FAILED else {
            let e = errno
            _ = worldos_drm_destroy_dumb(fd, handle)
            throw DeviceError(device: path, errno: e, action: "map the dumb buffer")
        }
        memset(map, 0, Int(size))
        var framebuffer: UInt32 = 0
        guard drmModeAddFB(fd, UInt32(mode.width), UInt32(mode.height), 24, 32, pitch, handle, &framebuffer) == 0 else {
            let e = errno
            munmap(map, Int(size))
            _ = worldos_drm_destroy_dumb(fd, handle)
            throw DeviceError(device: path, errno: e, action: "add the framebuffer")
        }
        let s = (handle, Int(pitch), Int(size), map, framebuffer)
        scanout = s
        return s
    }
}
