#include "image/jpeg.h"

// clang-format off
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <cstring>

#include "core/error.h"
#include "image/image.h"

namespace dpcnn {
namespace jpeg {
namespace {

// A legitimate progressive JPEG has about ten scans; thousands of tiny scans
// each walk the whole coefficient buffer, so a small file could take minutes.
constexpr int kMaxScans = 1000;

// libjpeg reports a fatal error through error_exit, which must not return: the
// reader longjmps back to the setjmp in the method that called libjpeg. Each
// such method holds only trivially destructible locals, so nothing is skipped.
struct Reader {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
  bool created = false;

  Reader() {
    cinfo.err = jpeg_std_error(&err);
    err.error_exit = &Reader::fail;
    err.emit_message = &Reader::warn;
    cinfo.client_data = this;
    progress.progress_monitor = &Reader::monitor;
  }
  ~Reader() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  static Reader* of(j_common_ptr c) { return static_cast<Reader*>(c->client_data); }
  [[noreturn]] static void fail(j_common_ptr c) {
    Reader* r = of(c);
    (*c->err->format_message)(c, r->message);
    std::longjmp(r->jump, 1);
  }
  // Warnings (level -1) about corrupt data are tolerated as other viewers do
  // (extraneous bytes, a damaged segment), except running out of file: a
  // truncated JPEG would decode with its missing part made up.
  static void warn(j_common_ptr c, int level) {
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) fail(c);
  }
  static void monitor(j_common_ptr c) {
    auto* d = reinterpret_cast<j_decompress_ptr>(c);
    if (d->input_scan_number > kMaxScans) {
      std::snprintf(of(c)->message, sizeof message, "more than %d scans", kMaxScans);
      std::longjmp(of(c)->jump, 1);
    }
  }

  bool read_header(const uint8_t* data, size_t size) {
    if (setjmp(jump)) return false;
    jpeg_create_decompress(&cinfo);
    created = true;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    return true;
  }

  // Decodes into `out` (output_height rows of output_width * components).
  bool decode(uint8_t* out) {
    if (setjmp(jump)) return false;
    jpeg_start_decompress(&cinfo);
    const size_t stride = static_cast<size_t>(cinfo.output_width) * cinfo.output_components;
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out + static_cast<size_t>(cinfo.output_scanline) * stride;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    return true;
  }
};

InputError damaged(const std::string& name, const char* why) {
  const bool eof = std::strcmp(why, "Premature end of JPEG file") == 0;
  return InputError("image '" + name + "': " + (eof ? "truncated JPEG" : "damaged JPEG") + " (" +
                    why + ")");
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

void decode(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
            int* width, int* height, int* channels, std::vector<uint8_t>* pixels) {
  Reader r;
  if (!r.read_header(data, size)) throw damaged(name, r.message);
  check_image_dimensions(name, r.cinfo.image_width, r.cinfo.image_height, limits);
  // Adobe CMYK and YCCK files come out as (inverted) CMYK and are made RGB
  // below; everything else as gray or RGB, converted by libjpeg.
  const bool cmyk = r.cinfo.jpeg_color_space == JCS_CMYK || r.cinfo.jpeg_color_space == JCS_YCCK;
  r.cinfo.out_color_space = cmyk ? JCS_CMYK : r.cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  const int out_components = cmyk ? 4 : r.cinfo.num_components == 1 ? 1 : 3;
  const size_t n = static_cast<size_t>(r.cinfo.image_width) * r.cinfo.image_height;
  pixels->resize(n * static_cast<size_t>(out_components));
  if (!r.decode(pixels->data())) throw damaged(name, r.message);
  if (static_cast<int>(r.cinfo.output_components) != out_components)
    throw damaged(name, "unexpected colour components");
  if (cmyk) {
    // Adobe writes CMYK inverted (255 = no ink), as libjpeg hands it over:
    // R = C * K / 255 and so on, as stb_image and Pillow convert it.
    uint8_t* p = pixels->data();
    for (size_t i = 0; i < n; ++i) {
      const int k = p[4 * i + 3];
      for (int c = 0; c < 3; ++c)
        p[3 * i + c] = static_cast<uint8_t>((p[4 * i + c] * k + 127) / 255);
    }
    pixels->resize(n * 3);
  }
  *width = static_cast<int>(r.cinfo.image_width);
  *height = static_cast<int>(r.cinfo.image_height);
  *channels = cmyk ? 3 : out_components;
}

}  // namespace jpeg
}  // namespace dpcnn
