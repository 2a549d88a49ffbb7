mod mask_properties;
mod memo;
