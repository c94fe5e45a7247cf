#include <ft2build.h>
#include FT_FREETYPE_H

/* Load flags as constants: Swift does not import FreeType's flag macros. */
static const FT_Int32 worldos_ft_load_render = FT_LOAD_RENDER;
static const FT_Int32 worldos_ft_load_target_light = FT_LOAD_TARGET_LIGHT;
